"""The tenancy matrix: every API route x every kind of caller -> the expected status.

The routes come from the URL configuration, so a new endpoint without a row
here fails ``test_every_route_is_in_the_matrix``. For each workspace route the
required permission is read from the view's ``perms`` (the same table the
view enforces), and the expected status follows from the role -> permission
table in ``scopes.py``. An outsider's answer must be byte-identical to the
answer for a workspace or object that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import URLPattern, get_resolver
from rest_framework.test import APIClient

from tests.conftest import Person, client_for, make_user
from webapp.ide.models import Draft, TestRun
from webapp.serving.models import Alias, AliasRoute, Model, ModelVersion
from webapp.workspaces import actions
from webapp.workspaces.models import ApiKey, Membership
from webapp.workspaces.scopes import ROLE_ORDER, ROLES

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
PUBLIC = {"api-schema", "api-docs", "api-redoc", "api-roles"}
SIGNED_IN = {"api-me", "api-workspaces", "api-invitation-accept"}

# Bodies that are valid for a caller who is allowed to act.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("api-workspace", "PATCH"): {"name": "Renamed"},
    ("api-workspace", "DELETE"): {"confirm": "acme"},
    ("api-member", "PATCH"): {"role": "operator"},
    ("api-invitations", "POST"): {"role": "viewer"},
    ("api-keys", "POST"): {"name": "k", "scopes": ["read"]},
    ("api-alias", "POST"): {"version": 1},
    ("api-rollback", "POST"): {"alias": "production"},
}
# Permission for methods a view checks inside its action rather than in ``perms``.
ACTION_CHECKED = {("api-member", "DELETE"): "members.manage"}
# Keys created by someone else are invisible (404) to members without keys.manage.
HIDDEN_UNLESS = {"api-key": "keys.manage"}


def api_routes() -> list[tuple[str, str, Any]]:
    """(name, pattern, view class) for every route under /api/v1/."""
    routes = []
    for entry in get_resolver().url_patterns:
        if getattr(entry, "pattern", None) is not None and str(entry.pattern) == API_PREFIX:
            for pattern in entry.url_patterns:
                assert isinstance(pattern, URLPattern)
                view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
                routes.append((pattern.name, API_PREFIX + str(pattern.pattern), view))
    return routes


def methods_of(view: Any) -> list[str]:
    return [m.upper() for m in ("get", "post", "patch", "delete", "put") if hasattr(view, m)]


class World:
    """Acme with one member per role, a target member, an invitation and alice's key."""

    def __init__(self, team: dict[str, Person], charlie: Person) -> None:
        self.team = team
        self.charlie = charlie
        acme = team["owner"].workspace
        target = make_user("target-tom")
        Membership.objects.create(workspace=acme, user=target, role="viewer")
        owner = team["owner"]
        invitation, _ = actions.create_invitation(owner.actor, owner.access(acme), "viewer")
        key, _ = actions.create_api_key(owner.actor, owner.access(acme), "alice's key", ["read"])
        self.ids = {"username": "target-tom", "pk": {"api-invitation": invitation.pk, "api-key": key.pk}}
        model = Model.objects.create(workspace=acme, name="churn")
        version = ModelVersion.objects.create(
            workspace=acme, model=model, number=1, flavor="custom", manifest={}, bundle_sha256="0" * 64,
            bundle_size=1, status="ready",
        )
        alias = Alias.objects.create(workspace=acme, model=model, name="production")
        AliasRoute.objects.create(alias=alias, version=version, weight=100)
        TestRun.objects.create(id="run1", workspace=acme, model=model, status="passed")
        for person in team.values():  # each member's own draft, so reading it answers 200
            Draft.objects.create(workspace=acme, model=model, user=person.user)

    def url(self, name: str, pattern: str, slug: str = "acme", missing_object: bool = False) -> str:
        def fill(match: re.Match[str]) -> str:
            kind, arg = match.group(1), match.group(2)
            if arg == "slug":
                return slug
            if arg == "username":
                return "nobody-here" if missing_object else self.ids["username"]
            if arg == "pk":
                return "999999" if missing_object else str(self.ids["pk"][name])
            if arg == "name":
                return "no-such-model" if missing_object else "churn"
            if arg == "number":
                return "999" if missing_object else "1"
            if arg == "alias":
                return "production"
            if arg == "run_id":
                return "no-such-run" if missing_object else "run1"
            raise AssertionError(f"no value for <{kind}:{arg}> in {pattern}")

        return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, pattern)


def call(client: APIClient, method: str, url: str, body: dict[str, Any] | None) -> Any:
    return getattr(client, method.lower())(url, body or {}, format="json")


def expected_for_role(name: str, view: Any, method: str, role: str) -> int:
    perm = view.perms.get(method) or ACTION_CHECKED.get((name, method))
    assert perm, f"{name} {method} declares no permission: add it to the view's perms or ACTION_CHECKED"
    if perm not in ROLES[role]:
        return 403
    if name in HIDDEN_UNLESS and HIDDEN_UNLESS[name] not in ROLES[role]:
        return 404
    return 200


@pytest.fixture
def world(team: dict[str, Person], charlie: Person) -> World:
    return World(team, charlie)


def test_every_route_is_in_the_matrix():
    for name, pattern, view in api_routes():
        assert name in PUBLIC | SIGNED_IN or "<slug:slug>" in pattern, f"{pattern} is not in the tenancy matrix"
        if "<slug:slug>" in pattern:
            for method in methods_of(view):
                assert view.perms.get(method) or (name, method) in ACTION_CHECKED, (name, method)


def workspace_cases() -> list[tuple[str, str, str]]:
    return [
        (name, pattern, method)
        for name, pattern, view in api_routes()
        if "<slug:slug>" in pattern
        for method in methods_of(view)
    ]


@pytest.mark.parametrize(("name", "pattern", "method"), workspace_cases())
def test_anonymous_gets_401(world, name, pattern, method):
    response = call(APIClient(), method, world.url(name, pattern), BODIES.get((name, method)))
    assert response.status_code == 401, response.content


@pytest.mark.parametrize(("name", "pattern", "method"), workspace_cases())
def test_outsider_answer_is_identical_to_missing(world, name, pattern, method):
    outsider = client_for(world.charlie)
    body = BODIES.get((name, method))
    theirs = call(outsider, method, world.url(name, pattern), body)
    missing_ws = call(outsider, method, world.url(name, pattern, slug="no-such-ws"), body)
    assert theirs.status_code == 404
    assert theirs.content == missing_ws.content
    assert theirs.headers.get("Content-Type") == missing_ws.headers.get("Content-Type")
    if any(f"<{arg}>" in pattern for arg in ("int:pk", "str:username", "slug:name")):
        # And inside a workspace he belongs to, another tenant's object id looks missing too.
        own = call(outsider, method, world.url(name, pattern, slug="charlie-lab"), body)
        missing_obj = call(outsider, method, world.url(name, pattern, slug="charlie-lab", missing_object=True),
                           body)
        # (404 for lookups; routes that create what they name, like an upload, answer alike too.)
        assert own.status_code == missing_obj.status_code
        assert own.content == missing_obj.content


@pytest.mark.parametrize("role", ROLE_ORDER)
@pytest.mark.parametrize(("name", "pattern", "method"), workspace_cases())
def test_each_role_gets_what_its_permissions_say(world, role, name, pattern, method):
    view = next(v for n, _, v in api_routes() if n == name)
    expected = expected_for_role(name, view, method, role)
    response = call(client_for(world.team[role]), method, world.url(name, pattern), BODIES.get((name, method)))
    if expected == 200:
        # Allowed: whatever the action then says (400 bad body, 409 conflict, 415 multipart only), it is not
        # an authentication, permission or visibility answer, and never a server error.
        assert response.status_code not in (401, 403, 404) and response.status_code < 500, (
            role, name, method, response.status_code, response.content)
    else:
        assert response.status_code == expected, (role, name, method, response.status_code, response.content)


@pytest.mark.parametrize("name", sorted(SIGNED_IN))
def test_signed_in_routes_need_authentication(world, name):
    pattern = next(p for n, p, _ in api_routes() if n == name)
    view = next(v for n, _, v in api_routes() if n == name)
    for method in methods_of(view):
        assert call(APIClient(), method, "/" + pattern, {}).status_code == 401


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_routes_answer_anonymous(world, name):
    pattern = next(p for n, p, _ in api_routes() if n == name)
    assert APIClient().get("/" + pattern).status_code == 200


def test_keys_of_one_workspace_never_open_another(world):
    charlie = world.charlie
    from tests.conftest import bearer, key_for

    assert charlie.workspace is not None
    secret = key_for(charlie, charlie.workspace, ["read", "admin"])
    for name, pattern, view in api_routes():
        if "<slug:slug>" not in pattern:
            continue
        for method in methods_of(view):
            response = call(bearer(secret), method, world.url(name, pattern), BODIES.get((name, method)))
            assert response.status_code == 401, (name, method)
    assert ApiKey.objects.filter(workspace=world.team["owner"].workspace).count() == 1


# Pages ------------------------------------------------------------------------------------

# Object ids in page URLs, by route name -> the API route whose object it is.
PAGE_OBJECTS = {"ws-invitation-revoke": "api-invitation", "ws-key-revoke": "api-key"}
# Routes outside /w/<slug>/ and /api/v1/, and who may open them.
OPEN_PAGES = {"healthz", "sandbox-artifact", "login", "signup", "password_reset", "password_reset_done",
              "password_reset_confirm", "password_reset_complete", "invitation", "logout"}
SIGNED_IN_PAGES = {"home", "workspaces", "workspace-new", "account", "password_change"}


def all_routes() -> list[tuple[str, str, Any]]:
    """(name, pattern, callback) for every route in the URL map, nested includes flattened."""
    found: list[tuple[str, str, Any]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLPattern):
                found.append((entry.name, prefix + str(entry.pattern), entry.callback))
            else:
                walk(entry.url_patterns, prefix + str(entry.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def page_routes() -> list[tuple[str, str, Any]]:
    return [(n, p, cb) for n, p, cb in all_routes() if p.startswith("w/<slug:slug>/")]


def test_every_route_of_the_url_map_is_classified():
    for name, pattern, callback in all_routes():
        if pattern.startswith(API_PREFIX):
            continue  # the API matrix above
        if pattern.startswith("w/<slug:slug>/"):
            assert getattr(callback, "podium_perms", None), f"{pattern} declares no permissions (workspace_page)"
            continue
        assert name in OPEN_PAGES | SIGNED_IN_PAGES, f"{pattern} ({name}) is not in the tenancy matrix"


def page_cases() -> list[tuple[str, str, str]]:
    return [(n, p, m) for n, p, cb in page_routes() for m in cb.podium_perms]


def page_url(world: World, name: str, pattern: str, slug: str = "acme", missing_object: bool = False) -> str:
    return world.url(PAGE_OBJECTS.get(name, name), pattern, slug=slug, missing_object=missing_object)


def page_call(client: Any, method: str, url: str) -> Any:
    return client.get(url) if method == "GET" else client.post(url, {})


@pytest.mark.parametrize(("name", "pattern", "method"), page_cases())
def test_pages_send_anonymous_visitors_to_sign_in(world, client, name, pattern, method):
    response = page_call(client, method, page_url(world, name, pattern))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login")


@pytest.mark.parametrize(("name", "pattern", "method"), page_cases())
def test_pages_answer_outsiders_like_a_missing_workspace(world, client, name, pattern, method):
    client.force_login(world.charlie.user)
    theirs = page_call(client, method, page_url(world, name, pattern))
    missing = page_call(client, method, page_url(world, name, pattern, slug="no-such-ws"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


@pytest.mark.parametrize("role", ROLE_ORDER)
@pytest.mark.parametrize(("name", "pattern", "method"), page_cases())
def test_pages_follow_each_roles_permissions(world, client, role, name, pattern, method):
    callback = next(cb for n, _, cb in page_routes() if n == name)
    perm = callback.podium_perms[method]
    client.force_login(world.team[role].user)
    response = page_call(client, method, page_url(world, name, pattern))
    if perm in ROLES[role]:
        assert response.status_code not in (401, 403) and response.status_code < 500, (role, name, method,
                                                                                         response.status_code)
    else:
        assert response.status_code == 403, (role, name, method, response.status_code)
