"""The deploy pipeline of one model version, run by the worker (``workers.tasks.deploy_version``).

Steps, each recorded on the version as it starts and ends:

1. ``environment``: the version's requirements become a virtual environment,
   built once in a build sandbox (``sandbox.environments``), then cached by
   their hash; the build output is kept in ``<version dir>/build.log``.
2. ``start``: the executor starts ``replicas`` model-server sandboxes mounting
   the version's code read-only.
3. ``load``: every replica has loaded the model and answers ``GET /ready``. A
   replica that exits first (``load()`` raised, a limit was hit) fails the step,
   leading with the user's own error and where it happened.

When all steps pass, a version uploaded with ``promote`` takes the production
alias (the rollout: the new replicas are ready before traffic moves, and the
versions no longer needed are drained and stopped afterwards). A failure
leaves every alias where it was, so the previous version keeps serving.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sandbox import LogLine, SandboxError, SandboxHandle, SandboxSpec, get_executor
from sandbox.spec import Network, Resources
from webapp.serving import actions, environments
from webapp.serving.models import AliasRoute, ModelVersion
from webapp.workspaces.access import Access, Actor
from webapp.workspaces.models import Membership

log = logging.getLogger(__name__)
RUNNING_STATES = ("queued", "building", "starting")


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.message = message


def build_log_path(version: ModelVersion) -> Path:
    return actions.version_dir(version) / "build.log"


def run_deploy(version_id: int) -> None:
    version = ModelVersion.objects.select_related("model", "workspace").filter(pk=version_id).first()
    if version is None or version.status not in RUNNING_STATES:
        return  # deleted, or already finished: a redelivered task has nothing to do
    step = "environment"
    try:
        environment = _environment(version)
        step = "start"
        handle = _start(version, environment)
        step = "load"
        _wait_ready(version, handle)
    except StepFailed as failure:
        _fail(version, failure.step, failure.message)
        return
    except Exception as exc:  # noqa: BLE001 - any failure is reported on the version, never lost
        log.exception("deploy of version %s failed in step %s", version_id, step)
        _fail(version, step, f"{type(exc).__name__}: {exc}")
        return
    # "ready" and the rollout commit together: whoever sees the version ready sees it serving.
    with transaction.atomic():
        actions.mark_step(version, "load", "done", status="ready", ready_at=timezone.now())
        if version.manifest.get("promote", True):
            _promote(version)
    if version.manifest.get("promote", True):
        from workers.tasks import stop_unused_versions

        # Runs again after the drain period; beat also sweeps every model (see core/signals.py).
        transaction.on_commit(
            lambda: stop_unused_versions.apply_async((version.model_id,), countdown=settings.PODIUM_DRAIN_S + 1)
        )


def _environment(version: ModelVersion) -> Path:
    actions.mark_step(version, "environment", "running", status="building")
    path = build_log_path(version)
    with open(path, "a") as build_log:
        def emit(line: str) -> None:
            build_log.write(f"{timezone.now().isoformat()} {line.rstrip()}\n")
            build_log.flush()

        try:
            environment = environments.ensure(version.requirements, version.workspace,
                                              bundle=actions.version_dir(version) / "code" / "bundle", on_output=emit)
        except SandboxError as exc:
            emit(str(exc))
            raise StepFailed("environment", f"Installing the requirements failed:\n{exc}") from None
        emit(f"environment ready ({'cached' if environment.cached else 'built'}): {environment.key}")
    actions.mark_step(version, "environment", "done")
    return environment.path


def server_spec(version: ModelVersion, environment: Path) -> SandboxSpec:
    """The spec of a version's model servers (the deploy starts it; the reconciler starts it again)."""
    return SandboxSpec(
        workspace=version.workspace.slug,
        name=f"{version.model.name}-v{version.number}",
        purpose="server",
        command=["python", "/code/_podium/model_server.py", "/code/bundle",
                 "--concurrency", str(version.manifest.get("concurrency", 1)),
                 "--predict-timeout", str(settings.PODIUM_PREDICT_TIMEOUT_S)],
        code_dir=actions.version_dir(version) / "code",
        environment=environment,
        env=dict(version.manifest.get("env") or {}),
        replicas=version.replicas,
        resources=Resources(cpu=version.cpu, memory_mib=version.memory_mib, gpus=version.gpus),
        network=Network.OUTBOUND if version.workspace.allow_outbound_network else Network.NONE,
    )


def _start(version: ModelVersion, environment: Path) -> SandboxHandle:
    actions.mark_step(version, "start", "running", status="starting")
    try:
        handle = get_executor().start(server_spec(version, environment))
    except SandboxError as exc:
        raise StepFailed("start", f"The sandbox could not start: {exc}") from None
    actions.mark_step(version, "start", "done", sandbox=handle.model_dump(mode="json"))
    return handle


def _wait_ready(version: ModelVersion, handle: SandboxHandle) -> None:
    actions.mark_step(version, "load", "running")
    executor = get_executor()
    deadline = time.monotonic() + settings.PODIUM_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        status = executor.poll(handle)
        if status.done or status.restarts > 0:
            executor.stop(handle, grace_s=1)
            lines = list(executor.logs(handle, tail=400))
            raise StepFailed("load", load_failure(lines, status.reason, status.exit_code))
        addresses = executor.addresses(handle)
        if len(addresses) == version.replicas and all(_answers_ready(a) for a in addresses):
            return
        time.sleep(0.05)
    executor.stop(handle, grace_s=1)
    raise StepFailed("load", f"The model was not loaded after {settings.PODIUM_READY_TIMEOUT_S} s "
                             "(PODIUM_READY_TIMEOUT_S): load() may be waiting on something.")


LOAD_FAILED = "[podium] load failed: "


def load_failure(lines: list[LogLine], reason: str | None, exit_code: int | None) -> str:
    """What a member reads when the model server ended before it was ready: the user's own error and
    where it happened first (the model server's ``load failed:`` line), then its traceback once (of the
    last attempt, when the supervisor had restarted it), then what that attempt printed; else the sandbox's
    reason (a limit hit, a signal)."""
    last = max((n for n, line in enumerate(lines) if line.text.startswith(LOAD_FAILED)), default=None)
    if last is None:
        why = reason or (f"exited with code {exit_code}" if exit_code is not None else "stopped")
        tail = "\n".join(line.text for line in lines[-20:])
        return f"The model server stopped before the model was loaded: {why}.\n\n{tail}".strip()
    # The attempt began after the supervisor's previous line (a restart), or with the log.
    begun = max((n for n, line in enumerate(lines[:last]) if line.stream == "system"), default=-1) + 1
    attempt = [line for line in lines[begun:last] if not line.text.startswith("[podium]")]
    start = next((n for n, line in enumerate(attempt) if line.text.startswith("Traceback (most recent call")),
                 len(attempt))
    traceback = "\n".join(line.text for line in attempt[start:] if line.stream == "stderr")
    printed = [line.text for line in attempt[:start] if line.stream == "stdout"][-10:]
    parts = [lines[last].text[len(LOAD_FAILED):], traceback]
    if reason and "limit" in reason:
        parts.insert(1, reason)
    if printed:
        parts.append("Printed before it failed:\n" + "\n".join(printed))
    return "\n\n".join(part for part in parts if part)


def _answers_ready(address: str) -> bool:
    try:
        with model_client(address, timeout=2) as client:
            return client.get("/ready").status_code == 200
    except httpx.HTTPError:
        return False


def model_client(address: str, timeout: float) -> httpx.Client:
    if address.startswith("unix:"):
        return httpx.Client(transport=httpx.HTTPTransport(uds=address[5:]), base_url="http://model", timeout=timeout)
    return httpx.Client(base_url=address, timeout=timeout)


def _fail(version: ModelVersion, step: str, message: str) -> None:
    version.refresh_from_db()
    actions.mark_step(version, step, "failed", status="failed", failed_step=step, error=message[:20000])


def _promote(version: ModelVersion) -> None:
    """Move production to the new version (it is ready); what is no longer needed is drained and stopped
    afterwards by ``stop_unused``."""
    owner = Membership.objects.filter(workspace=version.workspace, role="owner").select_related("user").first()
    creator = version.created_by
    membership = Membership.objects.filter(workspace=version.workspace, user=creator).first() or owner
    if membership is None:
        return
    access = Access.build(version.workspace, membership, None)
    actor = Actor(user=membership.user, user_agent="podium deploy")
    actions.set_routes(actor, access, version.model, actions.PRODUCTION, [(version.number, 100)],
                       action="model.rollout")


def stop_unused(model_id: int) -> list[int]:
    """Stop ready versions that no alias has routed to for ``PODIUM_DRAIN_S`` seconds (so calls
    in flight finish), keeping the newest unrouted one warm so that a rollback is instant.
    Returns the numbers stopped. Safe to run any time: beat runs it for every model."""
    drained_before = timezone.now() - dt.timedelta(seconds=settings.PODIUM_DRAIN_S)
    routed = set(AliasRoute.objects.filter(alias__model_id=model_id).values_list("version_id", flat=True))
    ready = list(ModelVersion.objects.filter(model_id=model_id, status="ready").order_by("-number"))
    unrouted = [v for v in ready if v.pk not in routed]
    stopped = []
    for version in unrouted[1:]:
        if version.unrouted_at is None or version.unrouted_at <= drained_before:
            stop_version(version)
            stopped.append(version.number)
    return stopped


def stop_version(version: ModelVersion) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(status="stopping")
    if version.sandbox:
        try:
            get_executor().stop(SandboxHandle.model_validate(version.sandbox), grace_s=5)
        except SandboxError:
            log.warning("could not stop the sandbox of version %s", version.pk, exc_info=True)
    ModelVersion.objects.filter(pk=version.pk).update(status="stopped")
