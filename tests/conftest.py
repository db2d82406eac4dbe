"""Shared fixtures: named people and a workspace with one member per role.

- alice owns the "acme" workspace;
- bob joins it with whichever role a test needs (``member`` fixture);
- charlie has his own workspace and should have no access to Alice's stuff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

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
