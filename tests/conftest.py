"""Shared fixtures: named people and a workspace with one member per role.

- alice owns the "acme" workspace;
- bob joins it with whichever role a test needs (``member`` fixture);
- charlie has his own workspace and should have no access to Alice's stuff.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

import sandbox
from sandbox.config import SandboxConfig
from tests.sandbox.conftest import sandboxes_possible, start_supervisor, stop_supervisor
from webapp.workspaces import actions
from webapp.workspaces.access import Access, Actor, workspace_for
from webapp.workspaces.models import Membership, Workspace
from webapp.workspaces.scopes import ROLE_ORDER

PASSWORD = "correct horse battery staple"


@dataclass
class Person:
    user: User
    workspace: Workspace | None = None

    @property
    def actor(self) -> Actor:
        return Actor(user=self.user)

    def access(self, workspace: Workspace) -> Access:
        return workspace_for(self.actor, workspace.slug)


def make_user(username: str) -> User:
    return User.objects.create_user(username, email=f"{username}@example.com", password=PASSWORD)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Real hashing costs ~0.3 s a user; the tests make dozens of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db: Any) -> Person:
    user = make_user("alice")
    workspace = actions.create_workspace(Actor(user=user), "Acme", slug="acme")
    return Person(user, workspace)


@pytest.fixture
def acme(alice: Person) -> Workspace:
    assert alice.workspace is not None
    return alice.workspace


@pytest.fixture
def charlie(db: Any) -> Person:
    user = make_user("charlie")
    workspace = actions.create_workspace(Actor(user=user), "Charlie's lab", slug="charlie-lab")
    return Person(user, workspace)


@pytest.fixture
def member_of(acme: Workspace) -> Callable[[str, str], Person]:
    """Add a new user with ``role`` to Acme."""

    def add(username: str, role: str) -> Person:
        user = make_user(username)
        Membership.objects.create(workspace=acme, user=user, role=role)
        return Person(user, acme)

    return add


@pytest.fixture
def team(alice: Person, member_of: Callable[[str, str], Person]) -> dict[str, Person]:
    """Acme with one member per role: owner alice, then admin/developer/operator/viewer."""
    people = {"owner": alice}
    for role in ROLE_ORDER[1:]:
        people[role] = member_of(f"{role}-bob", role)
    return people


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def client_for(person: Person | None) -> APIClient:
    client = APIClient()
    if person is not None:
        client.force_login(person.user)
    return client


def key_for(person: Person, workspace: Workspace, scopes: list[str], **kwargs: Any) -> str:
    _, secret = actions.create_api_key(person.actor, person.access(workspace), "test key", scopes, **kwargs)
    return secret


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# Real sandboxes for deploys and editor test runs ------------------------------------------------

SUPERVISOR: dict[str, int] = {}


@pytest.fixture(scope="session")
def serving_var() -> Iterator[Path]:
    reason = sandboxes_possible()
    if reason:
        pytest.fail(f"deploys and test runs need real sandboxes: {reason}")
    path = Path(tempfile.mkdtemp(prefix="podium-serving-", dir="/tmp"))
    path.chmod(0o755)
    config = SandboxConfig(var_dir=path, uid_base=310_000, uid_count=1000)
    proc = start_supervisor(config)
    SUPERVISOR["pid"] = proc.pid
    previous = os.environ.get("PODIUM_VAR_DIR")
    os.environ["PODIUM_VAR_DIR"] = str(path)
    os.environ["PODIUM_SANDBOX_UID_BASE"] = "310000"
    sandbox._executor.cache_clear()
    yield path
    stop_supervisor(proc)
    if previous is None:
        os.environ.pop("PODIUM_VAR_DIR", None)
    else:
        os.environ["PODIUM_VAR_DIR"] = previous
    os.environ.pop("PODIUM_SANDBOX_UID_BASE", None)
    sandbox._executor.cache_clear()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serving(serving_var: Path, settings: Any) -> Iterator[Path]:
    """Everything a deploy needs, with the Celery deploy task run inline."""
    from webapp.serving import recorder, routing
    from workers.celery import app

    artifacts = serving_var / "artifacts"
    artifacts.mkdir(exist_ok=True)
    artifacts.chmod(0o755)
    settings.PODIUM_ARTIFACTS_DIR = artifacts
    settings.PODIUM_READY_TIMEOUT_S = 60
    settings.PODIUM_DRAIN_S = 0
    app.conf.task_always_eager = True
    routing._cache.clear()
    yield serving_var
    app.conf.task_always_eager = False
    routing._cache.clear()
    recorder.flush()  # this test's call records belong to this test's rows
    stop_all_sandboxes()


def stop_all_sandboxes() -> None:
    """What one test started (model versions, editor test runs) must not serve or use memory in the next."""
    from sandbox import SandboxHandle, get_executor
    from webapp.ide import runner
    from webapp.ide.models import TestRun, WarmRunner
    from webapp.serving.models import ModelVersion

    runner.join_threads()
    handles = [*ModelVersion.objects.exclude(sandbox=None).values_list("sandbox", flat=True),
               *TestRun.objects.exclude(sandbox=None).values_list("sandbox", flat=True),
               *WarmRunner.objects.exclude(handle=None).values_list("handle", flat=True)]
    for handle in handles:
        get_executor().stop(SandboxHandle.model_validate(handle), grace_s=1)
