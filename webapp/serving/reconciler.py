"""The reconciler: what should run against what the executor has, and the repair of the difference.

Beat runs :func:`reconcile` every ``PODIUM_RECONCILE_S`` seconds (``workers.tasks.reconcile_sandboxes``).
*Should run*: every model version with status ``ready`` (its model servers) and every warm runner. *Has*:
what ``executor.poll`` reports for the stored handle. A version whose sandbox is **gone** (the executor has
no such sandbox: a Nomad job deregistered by hand, a supervisor that lost it), **stopped** behind Podium's
back, or **failed** is started again from the same spec (``deploy.server_spec``) and the new handle stored;
the gateway routes to it as soon as its replicas pass their checks. A version restarted
``PODIUM_RECONCILE_MAX_RESTARTS`` times within an hour, or whose environment is gone, or that the executor
refuses to start, is marked ``failed`` with the reason instead. Either way the audit log gets a row by
"Podium" (``model.version.restarted`` / ``model.version.failed``) and open pages a ``model.version`` event.

Warm runners are the editor's (``webapp.ide.warm.retire_dead``, run by the same beat task): one whose sandbox
is not running is retired, and the next test run starts a new one.

While the executor cannot be reached nothing is repaired: an outage of the control plane is not evidence
that a sandbox is gone, and the gateway keeps serving with the addresses it last knew.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sandbox import SandboxError, SandboxHandle, SandboxNotFound, SandboxUnavailable, State, get_executor
from sandbox.executors.base import Executor
from webapp.serving import actions, deploy, environments, routing
from webapp.serving.models import ModelVersion
from webapp.workspaces import events
from webapp.workspaces.access import Actor
from webapp.workspaces.actions import record
from webapp.workspaces.models import AuditEvent

log = logging.getLogger(__name__)
RESTARTED = "model.version.restarted"
FAILED = "model.version.failed"


@dataclass(frozen=True)
class Repair:
    """One difference found and what was done about it."""

    version_id: int
    action: str  # RESTARTED or FAILED
    reason: str


def reconcile(executor: Executor | None = None) -> list[Repair]:
    """Compare and repair once; returns what was repaired (nothing while the executor is unreachable)."""
    executor = executor or get_executor()
    repairs: list[Repair] = []
    for version in ModelVersion.objects.filter(status="ready").select_related("model", "workspace"):
        try:
            problem = _problem(executor, version)
        except SandboxUnavailable as exc:
            log.warning("reconciler: the executor cannot be reached, repairing nothing: %s", exc)
            return repairs
        if problem is not None:
            repairs.append(_repair(executor, version, problem))
    return repairs


def _problem(executor: Executor, version: ModelVersion) -> str | None:
    """Why this ready version's sandbox is not serving, or None when it is (or may yet be)."""
    if not version.sandbox:
        return "it had no sandbox"
    try:
        status = executor.poll(SandboxHandle.model_validate(version.sandbox))
    except SandboxNotFound:
        return "its sandbox is gone from the executor"
    except SandboxUnavailable:
        raise
    except SandboxError as exc:
        return f"its sandbox could not be read: {exc}"
    if status.state == State.STOPPED:
        return "its sandbox was stopped outside Podium"
    if status.done:
        return f"its sandbox {status.state.value}: {status.reason or f'exit code {status.exit_code}'}"
    return None


def _repair(executor: Executor, version: ModelVersion, problem: str) -> Repair:
    since = timezone.now() - dt.timedelta(hours=1)
    restarts = AuditEvent.objects.filter(action=RESTARTED, object_type="modelversion", object_id=str(version.pk),
                                         created_at__gte=since).count()
    if restarts >= settings.PODIUM_RECONCILE_MAX_RESTARTS:
        return _fail(version, f"{problem}; it was restarted {restarts} times in the last hour")
    bundle = actions.version_dir(version) / "code" / "bundle"
    environment = environments.lookup(version.requirements, version.workspace, bundle=bundle)
    if environment is None:
        return _fail(version, f"{problem}, and its environment is gone; deploy it again")
    old = SandboxHandle.model_validate(version.sandbox) if version.sandbox else None
    try:
        handle = executor.start(deploy.server_spec(version, environment.path))
    except SandboxError as exc:
        return _fail(version, f"{problem}, and it could not start again: {exc}")
    if old is not None:
        with contextlib.suppress(SandboxError):  # whatever is left of it (a failed replica's allocation, say)
            executor.stop(old, grace_s=1)
    with transaction.atomic():
        # Only while it is still ready: a version being stopped meanwhile keeps its new sandbox no longer.
        kept = ModelVersion.objects.filter(pk=version.pk, status="ready").update(
            sandbox=handle.model_dump(mode="json"))
        if kept:
            _audit(version, RESTARTED, problem, sandbox=handle.id)
    if not kept:
        with contextlib.suppress(SandboxError):
            executor.stop(handle, grace_s=1)
        return Repair(version.pk, "skipped", "it is no longer ready")
    routing.announce(version.workspace_id, version.model.name)
    log.info("reconciler: restarted version %s (%s)", version.pk, problem)
    return Repair(version.pk, RESTARTED, problem)


def _fail(version: ModelVersion, reason: str) -> Repair:
    message = f"Podium stopped serving this version: {reason}."
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(status="failed", error=message)
        _audit(version, FAILED, reason)
    routing.announce(version.workspace_id, version.model.name)
    log.warning("reconciler: version %s failed: %s", version.pk, reason)
    return Repair(version.pk, FAILED, reason)


def _audit(version: ModelVersion, action: str, reason: str, **data: str) -> None:
    record(Actor.podium("podium reconciler"), version.workspace, action, version,
           model=version.model.name, version=version.number, reason=reason, **data)
    status = "failed" if action == FAILED else "ready"
    events.publish(version.workspace_id, "model.version", {
        "model": version.model.name, "version": version.number, "status": status,
        "reconciled": "restarted" if action == RESTARTED else "failed", "reason": reason,
    })
