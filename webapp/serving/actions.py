"""Every write to models, versions and aliases.

Uploading a version stores its bundle and queues the deploy task; the task
(``deploy.run_deploy``) moves the version through its steps. Aliases are
moved by :func:`set_routes`, which promotion, traffic splits and rollback all
use; each change is kept so that a rollback restores the one before.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from sandbox.errors import RequirementRefused
from sandbox.requirements import check_requirements
from webapp.serving import bundles, environments, quotas
from webapp.serving.models import STEPS, Alias, AliasChange, AliasRoute, Model, ModelVersion
from webapp.workspaces import events
from webapp.workspaces.access import Access, Actor
from webapp.workspaces.actions import ActionError, record
from webapp.workspaces.models import Workspace

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
NAME_RULE = "use lowercase letters, digits and dashes (1-64 characters)"
ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
PRODUCTION = "production"


def _require(access: Access, perm: str, what: str) -> None:
    if not access.can(perm):
        raise ActionError(f"Your role ({access.role}) does not allow you to {what}.", status=403)


def version_dir(version: ModelVersion) -> Path:
    root = Path(settings.PODIUM_ARTIFACTS_DIR)
    return root / str(version.workspace_id) / str(version.model_id) / f"v{version.number}"


RESERVED_NAMES = {"new"}  # /w/<slug>/models/new is the new-model page


def check_name(name: str) -> str:
    if name in RESERVED_NAMES:
        raise ActionError(f"'{name}' is reserved; choose another model name.", field="name")
    if not NAME_RE.match(name or ""):
        raise ActionError(
            f"'{name}' is not a valid model name: {NAME_RULE}.",
            field="name",
        )
    return name


def create_version(
    actor: Actor, access: Access, name: str, upload: IO[bytes], description: str = "", promote: bool = True
) -> ModelVersion:
    """Store an uploaded bundle as the next version of model ``name`` (created on first upload)
    and queue its deployment. With ``promote`` the version takes the production alias once ready."""
    _require(access, "models.deploy", "deploy models")
    check_name(name)
    target: Path | None = None
    try:
        with transaction.atomic():
            model, created = Model.objects.get_or_create(
                workspace=access.workspace, name=name,
                defaults={"created_by": actor.user, "description": description},
            )
            Model.objects.select_for_update().get(pk=model.pk)  # serialise version numbering per model
            number = (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = ModelVersion(workspace=access.workspace, model=model, number=number, created_by=actor.user)
            target = version_dir(version)
            shutil.rmtree(target, ignore_errors=True)
            try:
                manifest, sha256, size = bundles.store_bundle(upload, target)
            except bundles.BundleError as exc:
                raise ActionError(str(exc), field="bundle") from None
            _fill_from_manifest(version, manifest, description, promote)
            check_requirements_of(version, target / "code" / "bundle")
            Workspace.objects.select_for_update().get(pk=access.workspace.pk)  # one quota check at a time
            quotas.check_version(
                access.workspace, replicas=version.replicas, cpu=version.cpu, memory_mib=version.memory_mib,
                gpus=version.gpus,
                needs_build=environments.lookup(version.requirements, access.workspace,
                                                bundle=target / "code" / "bundle") is None)
            version.bundle_sha256, version.bundle_size = sha256, size
            version.save()
            if created:
                record(actor, access.workspace, "model.create", model)
            record(actor, access.workspace, "model.version_create", version, number=number, sha256=sha256)
            events.publish(access.workspace.pk, "model.version",
                           {"model": name, "version": number, "status": "queued"})
            from workers.tasks import deploy_version

            transaction.on_commit(lambda: deploy_version.delay(version.pk))
    except BaseException:
        # Nothing was recorded, so nothing may stay on disk either.
        if target is not None:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return version


def check_requirements_of(version: ModelVersion, bundle: Path | None) -> None:
    """Refuse, before anything is queued, requirement lines that could never be installed safely."""
    try:
        check_requirements(version.requirements, bundle=bundle,
                           allow_urls=version.workspace.allow_outbound_network)
    except RequirementRefused as exc:
        raise ActionError(str(exc), field="requirements") from None


def _fill_from_manifest(version: ModelVersion, manifest: bundles.Manifest, description: str, promote: bool) -> None:
    version.flavor = manifest.flavor
    version.manifest = {**manifest.model_dump(), "promote": promote}
    version.description = description or manifest.description
    version.requirements = "\n".join(manifest.requirements)
    version.cpu = manifest.resources.cpu
    version.memory_mib = manifest.resources.memory_mib
    version.gpus = manifest.resources.gpus
    version.replicas = manifest.replicas
    version.steps = [{"name": step, "status": "pending", "started_at": None, "finished_at": None} for step in STEPS]


def current_routes(alias: Alias) -> list[tuple[int, int]]:
    return sorted((r.version.number, r.weight) for r in alias.routes.select_related("version"))


def set_routes(actor: Actor, access: Access, model: Model, alias_name: str, routes: list[tuple[int, int]],
               action: str = "model.alias_set", record_change: bool = True) -> Alias:
    """Point ``alias_name`` at versions with weights (percent, summing to 100). Effective at once."""
    _require(access, "models.deploy", "move aliases")
    if not ALIAS_RE.match(alias_name or ""):
        raise ActionError("Alias names use lowercase letters, digits and dashes, starting with a letter.",
                          field="alias")
    if not routes:
        raise ActionError("Give at least one version for the alias.", field="routes")
    if sum(weight for _, weight in routes) != 100 or any(weight <= 0 for _, weight in routes):
        raise ActionError("Traffic weights must be positive and add up to 100.", field="routes")
    numbers = [number for number, _ in routes]
    if len(set(numbers)) != len(numbers):
        raise ActionError("Each version may appear once in a traffic split.", field="routes")
    with transaction.atomic():
        versions = {v.number: v for v in ModelVersion.objects.filter(model=model, number__in=numbers)}
        for number in numbers:
            version = versions.get(number)
            if version is None:
                raise ActionError(f"{model.name} has no version {number}.", status=404, field="routes")
            if version.status != "ready":
                raise ActionError(
                    f"Version {number} is {version.status}, not ready; only ready versions can take traffic.",
                    status=409, field="routes",
                )
        alias, _ = Alias.objects.select_for_update().get_or_create(
            workspace=access.workspace, model=model, name=alias_name
        )
        before = set(AliasRoute.objects.filter(alias__model=model).values_list("version_id", flat=True))
        alias.routes.all().delete()
        AliasRoute.objects.bulk_create(
            [AliasRoute(alias=alias, version=versions[n], weight=w) for n, w in routes]
        )
        after = set(AliasRoute.objects.filter(alias__model=model).values_list("version_id", flat=True))
        ModelVersion.objects.filter(pk__in=before - after).update(unrouted_at=timezone.now())
        ModelVersion.objects.filter(pk__in=after).update(unrouted_at=None)
        alias.updated_at = timezone.now()
        alias.save(update_fields=["updated_at"])
        if record_change:
            AliasChange.objects.create(alias=alias, routes=[list(r) for r in sorted(routes)], actor_label=actor.label)
        record(actor, access.workspace, action, model, alias=alias_name, routes=[list(r) for r in routes])
        events.publish(access.workspace.pk, "model.alias", {"model": model.name, "alias": alias_name,
                                                            "routes": [list(r) for r in routes]})
    _forget_routes(model)
    return alias


def rollback_target(changes: list[AliasChange]) -> list[tuple[int, int]] | None:
    """The routes a rollback would restore, from an alias's changes (any order); None when there is none."""
    live = sorted((c for c in changes if not c.rolled_back), key=lambda c: (c.created_at, c.pk), reverse=True)
    if len(live) < 2:
        return None
    return [(int(number), int(weight)) for number, weight in live[1].routes]


def rollback(actor: Actor, access: Access, model: Model, alias_name: str = PRODUCTION) -> Alias:
    """Undo the alias's newest routing change: it goes back to what it routed to before
    (no rebuild; those versions must still be ready). Rolling back again goes back further."""
    alias = Alias.objects.filter(model=model, name=alias_name).first()
    if alias is None:
        raise ActionError(f"{model.name} has no '{alias_name}' alias to roll back.", status=409)
    with transaction.atomic():
        live = list(alias.changes.select_for_update().filter(rolled_back=False).order_by("-created_at", "-id")[:2])
        if len(live) < 2:
            raise ActionError(f"'{alias_name}' has no earlier routing to roll back to.", status=409)
        current, previous = live
        routes = [(int(number), int(weight)) for number, weight in previous.routes]
        set_routes(actor, access, model, alias_name, routes, action="model.rollback", record_change=False)
        current.rolled_back = True
        current.save(update_fields=["rolled_back"])
    alias.refresh_from_db()
    return alias


def mark_step(version: ModelVersion, step: str, step_status: str, **fields: object) -> None:
    """Record a deploy step's progress and tell open pages (used by the deploy task)."""
    now = timezone.now().isoformat()
    for entry in version.steps:
        if entry["name"] == step:
            entry["status"] = step_status
            if step_status == "running":
                entry["started_at"] = now
            elif step_status in ("done", "failed"):
                entry["finished_at"] = now
    for name, value in fields.items():
        setattr(version, name, value)
    version.save(update_fields=["steps", *fields.keys()])
    events.publish(version.workspace_id, "model.version", {
        "model": version.model.name, "version": version.number, "status": version.status, "step": step,
        "step_status": step_status,
    })


def _forget_routes(model: Model) -> None:
    from webapp.serving import routing

    routing.announce(model.workspace_id, model.name)


def stop_version(actor: Actor, access: Access, version: ModelVersion) -> None:
    """Stop a version's replicas; refused while an alias still sends it traffic."""
    _require(access, "models.deploy", "stop versions")
    if AliasRoute.objects.filter(version=version).exists():
        raise ActionError(
            f"Version {version.number} still takes traffic; move its aliases to another version first.", status=409
        )
    if version.status in ("stopped", "failed"):
        return
    from webapp.serving.deploy import stop_version as stop

    stop(version)
    record(actor, access.workspace, "model.version_stop", version, number=version.number)
    events.publish(access.workspace.pk, "model.version",
                   {"model": version.model.name, "version": version.number, "status": "stopped"})


DEPLOYING = ("queued", "building", "starting")


def delete_version(actor: Actor, access: Access, version: ModelVersion) -> None:
    """Delete a version: its replicas stop, its bundle and logs are removed, its calls stay (without a
    version). Refused while an alias sends it traffic or its deploy is still running."""
    _require(access, "models.deploy", "delete versions")
    if AliasRoute.objects.filter(version=version).exists():
        raise ActionError(
            f"Version {version.number} still takes traffic; move its aliases to another version first.", status=409
        )
    if version.status in DEPLOYING:
        raise ActionError(f"Version {version.number} is still deploying; delete it once it is ready or failed.",
                          status=409)
    directory = version_dir(version)
    model = version.model
    with transaction.atomic():
        record(actor, access.workspace, "model.version_delete", version, number=version.number)
        version.delete()  # its sandbox stops after commit (serving/signals.py)
        transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
        from webapp.serving import routing

        routing.announce(model.workspace_id, model.name)
        events.publish(access.workspace.pk, "model.version",
                       {"model": model.name, "version": version.number, "status": "deleted"})


def delete_model(actor: Actor, access: Access, model: Model) -> None:
    """Delete a model with every version, alias, call record and editor source: serving stops at once
    (routes are announced gone), replicas stop after commit, files are removed. Refused while a version is
    deploying."""
    _require(access, "models.deploy", "delete models")
    deploying = model.versions.filter(status__in=DEPLOYING).values_list("number", flat=True).first()
    if deploying is not None:
        raise ActionError(f"Version {deploying} of {model.name} is still deploying; delete the model once it is "
                          "ready or failed.", status=409)
    directory = Path(settings.PODIUM_ARTIFACTS_DIR) / str(model.workspace_id) / str(model.pk)
    name, workspace_id = model.name, model.workspace_id
    with transaction.atomic():
        record(actor, access.workspace, "model.delete", model, versions=model.versions.count())
        model.delete()
        transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
        from webapp.serving import routing

        routing.announce(workspace_id, name)
        events.publish(access.workspace.pk, "model.deleted", {"model": name})
