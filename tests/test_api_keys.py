"""API key lifecycle: format, hash-only storage, scopes, revocation, expiry, wrong workspace."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import bearer, client_for, key_for
from webapp.lib import keys
from webapp.workspaces.models import ApiKey

pytestmark = pytest.mark.django_db


def test_key_format_has_prefix_and_checksum():
    secret = keys.generate()
    assert secret.startswith("pod_") and len(secret) == keys.KEY_LEN
    assert keys.is_well_formed(secret)
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert not keys.is_well_formed(tampered)
    assert not keys.is_well_formed(secret[:-2])
    assert not keys.is_well_formed("ghp_" + secret[4:])


def test_it_stores_only_a_hash(alice, acme):
    response = client_for(alice).post(
        "/api/v1/workspaces/acme/keys", {"name": "ci", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 201
    secret = response.json()["key"]
    row = ApiKey.objects.get(pk=response.json()["id"])
    assert row.key_hash == keys.digest(secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM workspaces_apikey")
        dump = repr(cursor.fetchall())
    assert secret not in dump
    assert secret[len("pod_") :] not in dump
    # The secret is never shown again.
    listed = client_for(alice).get(f"/api/v1/workspaces/acme/keys/{row.pk}").json()
    assert "key" not in listed and listed["prefix"] == secret[:10]


def test_it_authenticates_with_a_valid_key(alice, acme):
    secret = key_for(alice, acme, ["read"])
    response = bearer(secret).get("/api/v1/me")
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice"
    assert [w["slug"] for w in body["workspaces"]] == ["acme"]
    assert body["api_key"]["scopes"] == ["read"]
    assert ApiKey.objects.get(key_hash=keys.digest(secret)).last_used_at is not None


def test_it_rejects_a_malformed_key(db):
    response = bearer("pod_not-a-real-key").get("/api/v1/me")
    assert response.status_code == 401
    assert "Malformed API key" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_rejects_an_unknown_key(db):
    response = bearer(keys.generate()).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unknown_key"


def test_it_rejects_a_non_bearer_header(db):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_revocation_takes_effect_at_once(alice, acme):
    secret = key_for(alice, acme, ["read"])
    assert bearer(secret).get("/api/v1/workspaces/acme").status_code == 200
    key_id = ApiKey.objects.get(key_hash=keys.digest(secret)).pk
    assert client_for(alice).delete(f"/api/v1/workspaces/acme/keys/{key_id}").status_code == 204
    response = bearer(secret).get("/api/v1/workspaces/acme")
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_key"
    assert "revoked" in response.json()["detail"]


def test_it_rejects_an_expired_key(alice, acme):
    secret = key_for(alice, acme, ["read"], expires_at=timezone.now() + dt.timedelta(hours=1))
    ApiKey.objects.filter(key_hash=keys.digest(secret)).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = bearer(secret).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "expired_key"


def test_it_refuses_an_expiry_in_the_past(alice, acme):
    response = client_for(alice).post(
        "/api/v1/workspaces/acme/keys",
        {"name": "old", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400
    assert "future" in response.json()["detail"]


def test_wrong_workspace_answers_the_same_whether_or_not_it_exists(alice, acme, charlie):
    secret = key_for(alice, acme, ["read", "admin"])
    other = bearer(secret).get("/api/v1/workspaces/charlie-lab/members")
    missing = bearer(secret).get("/api/v1/workspaces/no-such-workspace/members")
    assert other.status_code == missing.status_code == 401
    assert other.content == missing.content
    assert "another workspace" in other.json()["detail"]


def test_scopes_limit_what_a_key_can_do(alice, acme):
    read_only = key_for(alice, acme, ["read"])
    response = bearer(read_only).post(
        "/api/v1/workspaces/acme/invitations", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 403
    assert "'admin' scope" in response.json()["detail"]
    admin = key_for(alice, acme, ["admin"])
    assert bearer(admin).post(
        "/api/v1/workspaces/acme/invitations", {"role": "viewer"}, format="json"
    ).status_code == 201


def test_a_key_that_has_the_admin_scope_is_never_told_to_get_it(alice, acme, member_of):
    member_of("dana", "developer")
    admin = bearer(key_for(alice, acme, ["admin"]))
    for response in (
        admin.delete("/api/v1/workspaces/acme", {"confirm": "acme"}, format="json"),
        admin.patch("/api/v1/workspaces/acme/members/dana", {"role": "owner"}, format="json"),
        admin.post("/api/v1/workspaces/acme/invitations", {"role": "owner"}, format="json"),
    ):
        assert response.status_code == 403, response.content
        detail = response.json()["detail"]
        assert "'admin' scope" not in detail, detail
        assert detail.startswith("No API key can do this: ") and "Sign in to Podium" in detail, detail
        assert "(this key's scopes: admin)" in detail


def test_a_key_lacking_a_scope_is_told_which_scope(alice, acme):
    read_only = bearer(key_for(alice, acme, ["invoke"]))
    detail = read_only.get("/api/v1/workspaces/acme/audit").json()["detail"]
    assert detail == ("This API key's scopes (invoke) do not allow this: read the audit log. "
                      "Use a key with the 'admin' scope.")
    detail = read_only.get("/api/v1/workspaces/acme/models").json()["detail"]
    assert "Use a key with the 'read' or 'deploy' scope." in detail, detail


def test_a_key_cannot_exceed_its_creators_current_role(acme, member_of):
    dev = member_of("dana", "developer")
    secret = key_for(dev, acme, ["read", "deploy"])
    assert bearer(secret).get("/api/v1/workspaces/acme").status_code == 200
    # Demoting the creator narrows the key at once.
    from webapp.workspaces.models import Membership

    Membership.objects.filter(user=dev.user).update(role="viewer")
    response = bearer(secret).get("/api/v1/workspaces/acme/keys")
    assert response.status_code == 403


def test_developers_create_keys_only_within_their_scopes(acme, member_of):
    dev = member_of("dana", "developer")
    client = client_for(dev)
    ok = client.post("/api/v1/workspaces/acme/keys", {"name": "mine", "scopes": ["invoke", "deploy"]},
                     format="json")
    assert ok.status_code == 201
    refused = client.post("/api/v1/workspaces/acme/keys", {"name": "x", "scopes": ["admin"]}, format="json")
    assert refused.status_code == 403
    assert "'admin' scope" in refused.json()["detail"]


def test_developers_see_and_revoke_only_their_own_keys(alice, acme, member_of):
    dev = member_of("dana", "developer")
    alice_key = key_for(alice, acme, ["read"])
    alice_key_id = ApiKey.objects.get(key_hash=keys.digest(alice_key)).pk
    client = client_for(dev)
    assert client.get("/api/v1/workspaces/acme/keys").json() == []
    assert client.delete(f"/api/v1/workspaces/acme/keys/{alice_key_id}").status_code == 404


def test_operators_cannot_create_keys(acme, member_of):
    op = member_of("olga", "operator")
    response = client_for(op).post("/api/v1/workspaces/acme/keys", {"name": "x", "scopes": ["invoke"]},
                                   format="json")
    assert response.status_code == 403


def test_removing_a_member_revokes_their_keys(alice, acme, member_of):
    dev = member_of("dana", "developer")
    secret = key_for(dev, acme, ["read"])
    assert client_for(alice).delete("/api/v1/workspaces/acme/members/dana").status_code == 204
    response = bearer(secret).get("/api/v1/me")
    assert response.status_code == 401


def test_keys_cannot_create_workspaces(alice, acme):
    secret = key_for(alice, acme, ["admin", "read"])
    response = bearer(secret).post("/api/v1/workspaces", {"name": "Sneaky"}, format="json")
    assert response.status_code == 403
