"""Every write the browser editor makes: sources, drafts, presence, models from templates,
test runs and deploys from the editor.

Views, consumers and tasks call these; each write runs in one transaction, records an
audit event where a person would want one (saves, creations, test runs, deploys; not
draft autosaves or heartbeats, which happen every few seconds) and publishes a live
workspace event after commit.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import secrets
from functools import cache
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.ide import catalog
from webapp.ide import files as f
from webapp.ide.models import Draft, ModelSource, SourceRevision, TestRun
from webapp.serving import actions as serving
from webapp.serving import quotas
from webapp.serving.models import Model, ModelVersion
from webapp.workspaces import events
from webapp.workspaces.access import Access, Actor
from webapp.workspaces.actions import ActionError, record
from webapp.workspaces.models import Workspace

EDITING_WINDOW_S = 45
MAX_SAMPLE_BYTES = 1024 * 1024


class SourceConflict(ActionError):
    """A save based on an older revision than the one saved now; ``theirs`` is the newer source."""

    def __init__(self, message: str, theirs: ModelSource) -> None:
        super().__init__(message, status=409)
        self.theirs = theirs


def _require(access: Access, perm: str, what: str) -> None:
    if not access.can(perm):
        raise ActionError(f"Your role ({access.role}) does not allow you to {what}.", status=403)


def check_sample_input(value: Any) -> Any:
    if len(json.dumps(value)) > MAX_SAMPLE_BYTES:
        raise ActionError("The sample input is larger than 1 MiB.", field="sample_input")
    return value


# Source ------------------------------------------------------------------------------------


def source_of(model: Model) -> ModelSource:
    """The model's saved source. A model created by upload gets its source from its latest
    version's bundle the first time (text files; binary files listed as read-only)."""
    found = ModelSource.objects.select_related("saved_by").filter(model=model).first()
    if found is not None:
        return found
    source = ModelSource(workspace_id=model.workspace_id, model=model)
    latest = ModelVersion.objects.filter(model=model).select_related("created_by").order_by("-number").first()
    if latest is not None:
        files, binary = f.read_bundle_dir(serving.version_dir(latest) / "code" / "bundle")
        if files or binary:
            source.files, source.binary, source.binary_version = files, binary, latest.number
            source.revision, source.saved_by, source.saved_at = 1, latest.created_by, latest.created_at
    try:
        with transaction.atomic():
            source.save()
            if source.revision:
                SourceRevision.objects.create(workspace_id=model.workspace_id, model=model, number=1,
                                              files=source.files, saved_by=source.saved_by,
                                              saved_at=source.saved_at)
    except IntegrityError:  # another request imported it first
        return ModelSource.objects.select_related("saved_by").get(model=model)
    return source


def save_source(actor: Actor, access: Access, model: Model, files: Any, base_revision: int,
                sample_input: Any = None, has_sample: bool = False) -> ModelSource:
    """Save ``files`` as the next revision, unless someone saved since ``base_revision``
    (then :class:`SourceConflict` carries their source, to compare and merge)."""
    _require(access, "models.write", "edit model code")
    source_of(model)
    with transaction.atomic():
        source = ModelSource.objects.select_for_update(of=("self",)).select_related("saved_by").get(model=model)
        cleaned = f.check_files(files, read_only=source.binary)
        if source.revision != base_revision:
            who = source.saved_by.username if source.saved_by else "someone"
            raise SourceConflict(
                f"{who} saved a newer version at {source.saved_at.isoformat(timespec='seconds')}; "
                "compare and merge before saving.", source)
        source.files, source.revision = cleaned, source.revision + 1
        source.saved_by, source.saved_at = actor.user, timezone.now()
        if has_sample:
            source.sample_input = check_sample_input(sample_input)
        source.save()
        SourceRevision.objects.create(workspace=access.workspace, model=model, number=source.revision,
                                      files=cleaned, saved_by=actor.user, saved_at=source.saved_at)
        record(actor, access.workspace, "model.source_save", model, revision=source.revision, files=len(cleaned))
        events.publish(access.workspace.pk, "model.source", {
            "model": model.name, "revision": source.revision, "saved_by": actor.user.username if actor.user else None,
        })
    return source


def remember_sample_input(model: Model, sample_input: Any) -> None:
    source_of(model)
    ModelSource.objects.filter(model=model).update(sample_input=sample_input)


# Drafts ------------------------------------------------------------------------------------


def save_draft(actor: Actor, access: Access, model: Model, files: Any, base_revision: int,
               sample_input: Any) -> Draft:
    """Keep the actor's unsaved edits (an autosave: no audit record)."""
    _require(access, "models.write", "edit model code")
    assert actor.user is not None
    cleaned = f.check_files(files)
    draft, _ = Draft.objects.update_or_create(
        model=model, user=actor.user,
        defaults={"workspace": access.workspace, "files": cleaned, "base_revision": base_revision,
                  "sample_input": check_sample_input(sample_input), "updated_at": timezone.now()},
    )
    return draft


def delete_draft(actor: Actor, access: Access, model: Model) -> None:
    _require(access, "models.write", "edit model code")
    Draft.objects.filter(model=model, user=actor.user).delete()


# Presence ----------------------------------------------------------------------------------


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _editing_key(model: Model) -> str:
    # The creation time makes the key unique even where ids repeat (a database recreated, tests).
    return f"podium:ide:editing:{model.pk}:{model.created_at.timestamp():.6f}"


def heartbeat(actor: Actor, access: Access, model: Model, leaving: bool = False) -> list[dict[str, str]]:
    """Note that the actor has the model open for editing (or, ``leaving``, closed it); return the
    *others* seen in the last 45 s. Members who cannot edit see the editors but are not counted.
    Publishes ``model.editing`` when the set of editors changes.
    Kept in Redis only: losing it loses nothing durable."""
    assert actor.user is not None
    client, key, now = _redis(settings.REDIS_URL), _editing_key(model), timezone.now()
    cutoff = (now - dt.timedelta(seconds=EDITING_WINDOW_S)).timestamp()
    seen = {_text(k): json.loads(v) for k, v in client.hgetall(key).items()}
    live = {name: entry for name, entry in seen.items() if entry["seen"] >= cutoff}
    me = actor.user.username
    if not access.can("models.write"):
        # Readers (viewers, operators) see who edits but are not editors themselves.
        return [{"username": n, "since": e["since"]} for n, e in sorted(live.items()) if n != me]
    after = dict(live)
    if leaving:
        after.pop(me, None)
        client.hdel(key, me)
    else:
        since = live[me]["since"] if me in live else now.isoformat()
        after[me] = {"since": since, "seen": now.timestamp()}
        client.hset(key, me, json.dumps(after[me]))
    stale = [name for name in seen if name not in live]
    if stale:
        client.hdel(key, *stale)
    client.expire(key, EDITING_WINDOW_S * 4)
    if set(after) != set(live):
        editors = [{"username": n, "since": e["since"]} for n, e in sorted(after.items())]
        events.publish(access.workspace.pk, "model.editing", {"model": model.name, "editors": editors})
    return [{"username": n, "since": e["since"]} for n, e in sorted(after.items()) if n != me]


# New models from templates -----------------------------------------------------------------


def create_from_template(actor: Actor, access: Access, name: str, template: str, description: str = "") -> Model:
    _require(access, "models.write", "create models")
    serving.check_name(name)
    chosen = catalog.templates().get(template)
    if chosen is None:
        known = ", ".join(catalog.templates())
        raise ActionError(f"There is no template '{template}'; choose one of: {known}.", field="template")
    with transaction.atomic():
        if Model.objects.filter(workspace=access.workspace, name=name).exists():
            raise ActionError(f"A model named '{name}' already exists in this workspace.", status=409, field="name")
        try:
            with transaction.atomic():
                model = Model.objects.create(workspace=access.workspace, name=name, created_by=actor.user,
                                             description=description or chosen["description"])
        except IntegrityError:
            raise ActionError(f"A model named '{name}' already exists in this workspace.", status=409,
                              field="name") from None
        now = timezone.now()
        ModelSource.objects.create(workspace=access.workspace, model=model, files=chosen["files"], revision=1,
                                   saved_by=actor.user, saved_at=now, sample_input=chosen.get("sample_input"))
        SourceRevision.objects.create(workspace=access.workspace, model=model, number=1, files=chosen["files"],
                                      saved_by=actor.user, saved_at=now)
        record(actor, access.workspace, "model.create", model, template=template)
        events.publish(access.workspace.pk, "model.created", {"model": name, "template": template})
    return model


# Bundles: test runs and deploys ------------------------------------------------------------


def _binaries(model: Model, source: ModelSource, files: dict[str, str]) -> dict[str, Path]:
    """The saved source's binary files (read from the version they came from), unless shadowed."""
    if not source.binary or source.binary_version is None:
        return {}
    version = ModelVersion.objects.filter(model=model, number=source.binary_version).first()
    if version is None:
        return {}
    root = serving.version_dir(version) / "code" / "bundle"
    return {p: root / p for p in source.binary if p not in files and (root / p).is_file()}


def deploy_from_editor(actor: Actor, access: Access, model: Model, files: Any = None,
                       description: str = "", promote: bool = True) -> ModelVersion:
    """Turn the files (default: the saved source) into a bundle and deploy it as the next version."""
    _require(access, "models.deploy", "deploy models")
    source = source_of(model)
    chosen = source.files if files is None else f.check_files(files, read_only=source.binary)
    if not chosen:
        raise ActionError(f"{model.name} has no source files to deploy yet; save some code first.", status=409)
    binaries = _binaries(model, source, chosen)
    manifest = f.manifest_for(chosen, list(binaries))
    upload = io.BytesIO(f.bundle_tar(chosen, binaries, manifest))
    version = serving.create_version(actor, access, model.name, upload, description, promote)
    record(actor, access.workspace, "model.editor_deploy", model, version=version.number,
           revision=source.revision if files is None else None)
    return version


def start_test_run(actor: Actor, access: Access, model: Model, files: Any, sample_input: Any) -> TestRun:
    """Record a test run of ``files`` on ``sample_input`` and start it (see :mod:`webapp.ide.runner`)."""
    _require(access, "models.write", "test model code")
    source = source_of(model)
    cleaned = f.check_files(files, read_only=source.binary)
    if not cleaned:
        raise ActionError("Give the files to test.", field="files")
    binaries = _binaries(model, source, cleaned)
    manifest = f.manifest_for(cleaned, list(binaries))
    check_sample_input(sample_input)
    with transaction.atomic():
        Workspace.objects.select_for_update().get(pk=access.workspace.pk)  # one quota check at a time
        quotas.check_test_run(access.workspace)
        run = TestRun.objects.create(
            id=secrets.token_hex(8), workspace=access.workspace, model=model, created_by=actor.user,
            files=cleaned, sample_input=sample_input, requirements="\n".join(manifest["requirements"]),
        )
        ModelSource.objects.filter(model=model).update(sample_input=sample_input)
        record(actor, access.workspace, "model.test_run", model, run=run.pk)
        from webapp.ide import runner

        transaction.on_commit(lambda: runner.dispatch(run.pk))
    return run


def prewarm(actor: Actor, access: Access, model: Model, files: Any = None) -> str:
    """Start a warm runner for the member's next test run of ``files`` (default: their draft, else the saved
    source), so that it starts with its libraries imported; the runner's state in a word
    (``webapp.ide.warm.prewarm``). Starts nothing when the environment is not built yet."""
    _require(access, "models.write", "test model code")
    source = source_of(model)
    if files is None:
        draft = Draft.objects.filter(model=model, user=actor.user).first()
        chosen = dict(draft.files) if draft is not None and draft.files else dict(source.files)
    else:
        chosen = f.check_files(files, read_only=source.binary)
    if not chosen or actor.user is None:
        return "off"
    binaries = _binaries(model, source, chosen)
    manifest = f.manifest_for(chosen, list(binaries))
    probe = TestRun(workspace=access.workspace, model=model, created_by=actor.user, files=chosen,
                    requirements="\n".join(manifest["requirements"]))
    from webapp.ide import warm

    return warm.prewarm(probe, manifest, model.name)
