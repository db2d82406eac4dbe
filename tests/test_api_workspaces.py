"""Workspaces, members, invitations and the audit log through the REST API."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.conftest import client_for, make_user
from webapp.workspaces.models import AuditEvent, Membership, Workspace

pytestmark = pytest.mark.django_db


def test_it_creates_a_workspace_with_the_creator_as_owner(db):
    user = make_user("erin")
    client = client_for(type("P", (), {"user": user})())
    response = client.post("/api/v1/workspaces", {"name": "Vision Team"}, format="json")
    assert response.status_code == 201
    assert response.json() == {**response.json(), "slug": "vision-team", "role": "owner"}
    assert Membership.objects.get(user=user).role == "owner"
    assert AuditEvent.objects.filter(action="workspace.create", actor=user).exists()


def test_it_refuses_a_taken_slug_with_a_clear_message(alice, acme):
    response = client_for(alice).post("/api/v1/workspaces", {"name": "Acme 2", "slug": "acme"}, format="json")
    assert response.status_code == 409
    assert "taken" in response.json()["detail"]


def test_it_refuses_a_bad_slug(alice):
    response = client_for(alice).post("/api/v1/workspaces", {"name": "X", "slug": "Not A Slug!"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["slug"]


def test_it_lists_only_my_workspaces(alice, charlie):
    slugs = [w["slug"] for w in client_for(alice).get("/api/v1/workspaces").json()]
    assert slugs == ["acme"]


def test_admins_rename_and_viewers_cannot(team):
    assert client_for(team["admin"]).patch("/api/v1/workspaces/acme", {"name": "Acme Labs"},
                                           format="json").json()["name"] == "Acme Labs"
    response = client_for(team["viewer"]).patch("/api/v1/workspaces/acme", {"name": "Nope"}, format="json")
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]


def test_delete_needs_the_owner_and_a_typed_confirmation(team):
    assert client_for(team["admin"]).delete("/api/v1/workspaces/acme", {"confirm": "acme"},
                                            format="json").status_code == 403
    wrong = client_for(team["owner"]).delete("/api/v1/workspaces/acme", {"confirm": "acm"}, format="json")
    assert wrong.status_code == 400
    assert "type its URL name 'acme'" in wrong.json()["detail"]
    assert client_for(team["owner"]).delete("/api/v1/workspaces/acme", {"confirm": "acme"},
                                            format="json").status_code == 204
    assert not Workspace.objects.filter(slug="acme").exists()
    assert not Membership.objects.filter(workspace__slug="acme").exists()
    assert AuditEvent.objects.filter(action="workspace.delete", data__slug="acme").exists()


def test_invite_by_link_and_accept(alice, acme):
    response = client_for(alice).post("/api/v1/workspaces/acme/invitations", {"role": "developer"}, format="json")
    assert response.status_code == 201
    url = response.json()["url"]
    token = url.rsplit("/", 1)[1]
    dave = make_user("dave")
    client = client_for(type("P", (), {"user": dave})())
    accepted = client.post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert accepted.status_code == 200 and accepted.json()["role"] == "developer"
    again = client.post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert again.status_code == 409
    assert "accepted" in again.json()["detail"]


def test_invite_by_email_sends_the_link(alice, acme, django_capture_on_commit_callbacks):
    from workers.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(alice).post(
                "/api/v1/workspaces/acme/invitations", {"role": "viewer", "email": "Zed@Example.com"},
                format="json",
            )
    finally:
        app.conf.task_always_eager = False
    assert response.status_code == 201
    token = response.json()["url"].rsplit("/", 1)[1]
    assert mail.outbox and mail.outbox[-1].to == ["zed@example.com"]
    assert token in mail.outbox[-1].body
    assert "Acme" in mail.outbox[-1].subject


def test_a_revoked_invitation_cannot_be_accepted(alice, acme):
    created = client_for(alice).post("/api/v1/workspaces/acme/invitations", {"role": "viewer"}, format="json")
    inv_id, token = created.json()["id"], created.json()["url"].rsplit("/", 1)[1]
    assert client_for(alice).delete(f"/api/v1/workspaces/acme/invitations/{inv_id}").status_code == 204
    dave = make_user("dave")
    response = client_for(type("P", (), {"user": dave})()).post(
        "/api/v1/invitations/accept", {"token": token}, format="json"
    )
    assert response.status_code == 409 and "revoked" in response.json()["detail"]


def test_an_unknown_invitation_token_is_a_clear_404(alice):
    response = client_for(alice).post("/api/v1/invitations/accept", {"token": "nope"}, format="json")
    assert response.status_code == 404
    assert "not valid" in response.json()["detail"]


def test_only_owners_invite_owners(team):
    response = client_for(team["admin"]).post("/api/v1/workspaces/acme/invitations", {"role": "owner"},
                                              format="json")
    assert response.status_code == 403


def test_change_role_and_the_last_owner_rule(team):
    owner = client_for(team["owner"])
    assert owner.patch("/api/v1/workspaces/acme/members/developer-bob", {"role": "operator"},
                       format="json").json()["role"] == "operator"
    last = owner.patch("/api/v1/workspaces/acme/members/alice", {"role": "admin"}, format="json")
    assert last.status_code == 409
    assert "last owner" in last.json()["detail"]
    leave = owner.delete("/api/v1/workspaces/acme/members/alice")
    assert leave.status_code == 409
    # With a second owner, alice may step down.
    assert owner.patch("/api/v1/workspaces/acme/members/admin-bob", {"role": "owner"},
                       format="json").status_code == 200
    assert owner.patch("/api/v1/workspaces/acme/members/alice", {"role": "admin"},
                       format="json").status_code == 200


def test_admins_cannot_touch_owners(team):
    admin = client_for(team["admin"])
    assert admin.patch("/api/v1/workspaces/acme/members/alice", {"role": "viewer"},
                       format="json").status_code == 403
    assert admin.delete("/api/v1/workspaces/acme/members/alice").status_code == 403
    assert admin.patch("/api/v1/workspaces/acme/members/viewer-bob", {"role": "owner"},
                       format="json").status_code == 403


def test_any_member_can_leave(team):
    response = client_for(team["viewer"]).delete("/api/v1/workspaces/acme/members/viewer-bob")
    assert response.status_code == 204
    assert client_for(team["viewer"]).get("/api/v1/workspaces/acme").status_code == 404
    assert AuditEvent.objects.filter(action="member.leave").exists()


def test_viewers_cannot_remove_others(team):
    assert client_for(team["viewer"]).delete("/api/v1/workspaces/acme/members/operator-bob").status_code == 403


def test_audit_log_records_who_what_and_from_where(team):
    client = client_for(team["owner"])
    client.patch("/api/v1/workspaces/acme", {"name": "Acme Labs"}, format="json",
                 HTTP_USER_AGENT="pytest-agent", REMOTE_ADDR="10.1.2.3")
    events = client.get("/api/v1/workspaces/acme/audit", {"action": "workspace."}).json()["results"]
    rename = next(e for e in events if e["action"] == "workspace.rename")
    assert rename["actor"] == "alice"
    assert rename["ip"] == "10.1.2.3" and rename["user_agent"] == "pytest-agent"
    assert rename["data"] == {"old": "Acme", "new": "Acme Labs"}


def test_audit_log_filters_and_validates(team):
    client = client_for(team["owner"])
    client.patch("/api/v1/workspaces/acme", {"name": "Acme Labs"}, format="json")
    only = client.get("/api/v1/workspaces/acme/audit", {"action": "workspace.rename"}).json()["results"]
    assert {e["action"] for e in only} == {"workspace.rename"}
    assert client.get("/api/v1/workspaces/acme/audit", {"actor": "nobody"}).json()["results"] == []
    bad = client.get("/api/v1/workspaces/acme/audit", {"since": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["detail"]
    assert client_for(team["developer"]).get("/api/v1/workspaces/acme/audit").status_code == 403


def test_errors_are_json_with_a_message(alice):
    response = client_for(alice).post("/api/v1/workspaces", "not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]
    missing = client_for(alice).get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found.", "code": "not_found"}
    unsupported = client_for(alice).post("/api/v1/workspaces", "name=x",
                                         content_type="application/x-www-form-urlencoded")
    assert unsupported.status_code == 415 and unsupported.json()["detail"]


def test_member_list_does_not_grow_queries_with_members(team, django_assert_max_num_queries):
    client = client_for(team["owner"])
    client.get("/api/v1/workspaces/acme/members")
    with django_assert_max_num_queries(8):
        assert len(client.get("/api/v1/workspaces/acme/members").json()) == 5
