"""Server-rendered pages through Django's test client, on the real database.

People: alice owns Acme; members join Acme with the role a test needs;
charlie has his own workspace and should have no access to Alice's stuff.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone

from webapp.lib import keys as key_lib
from webapp.workspaces import actions
from webapp.workspaces.access import Actor, workspace_for
from webapp.workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Workspace

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
PAGES = ["ws-overview", "ws-members", "ws-keys", "ws-audit", "ws-settings"]


def make_user(username: str) -> User:
    return User.objects.create_user(username, email=f"{username}@example.com", password=PASSWORD)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice(db: Any) -> User:
    return make_user("alice")


@pytest.fixture
def acme(alice: User) -> Workspace:
    return actions.create_workspace(Actor(user=alice), "Acme", slug="acme")


@pytest.fixture
def join(acme: Workspace) -> Callable[[str, str], User]:
    def add(username: str, role: str) -> User:
        user = make_user(username)
        Membership.objects.create(workspace=acme, user=user, role=role)
        return user

    return add


@pytest.fixture
def charlie(db: Any) -> User:
    user = make_user("charlie")
    actions.create_workspace(Actor(user=user), "Charlie's lab", slug="charlie-lab")
    return user


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# Accounts ----------------------------------------------------------------------


def test_sign_up_lands_on_create_your_first_workspace() -> None:
    client = Client()
    response = client.post(url("signup"), {
        "username": "dana", "email": "Dana@Example.com", "password1": PASSWORD, "password2": PASSWORD,
    }, follow=True)
    assert response.redirect_chain[-1][0] == url("workspace-new")
    assert b"Create your first workspace" in response.content
    user = User.objects.get(username="dana")
    assert user.email == "dana@example.com"
    assert response.context["user"] == user


def test_sign_up_applies_the_password_validators() -> None:
    response = Client().post(url("signup"), {
        "username": "dana", "email": "dana@example.com", "password1": "12345678", "password2": "12345678",
    })
    assert response.status_code == 200
    assert b"This password is too short" in response.content
    form = response.context["form"]
    assert "This password is too short" in " ".join(form.errors["password1"])  # under the password itself
    assert "password2" not in form.errors
    assert b"entirely numeric" in response.content
    assert not User.objects.filter(username="dana").exists()


def test_sign_up_refuses_an_email_that_has_an_account(alice: User) -> None:
    response = Client().post(url("signup"), {
        "username": "alice2", "email": "ALICE@example.com", "password1": PASSWORD, "password2": PASSWORD,
    })
    assert b"An account with this email address exists already" in response.content
    assert not User.objects.filter(username="alice2").exists()


def test_sign_up_returns_to_a_safe_next_only() -> None:
    data = {"username": "dana", "email": "dana@example.com", "password1": PASSWORD, "password2": PASSWORD}
    response = Client().post(url("signup"), {**data, "next": "/invitations/abc"})
    assert response.headers["Location"] == "/invitations/abc"
    data.update(username="erin", email="erin@example.com")
    response = Client().post(url("signup"), {**data, "next": "https://evil.example.com/"})
    assert response.headers["Location"] == url("home")


def test_it_signs_in_and_out(alice: User, acme: Workspace) -> None:
    client = Client()
    response = client.post(url("login"), {"username": "alice", "password": PASSWORD})
    assert response.headers["Location"] == url("home")
    assert client.get(url("home")).headers["Location"] == url("workspaces")
    assert client.get(url("logout")).status_code == 405  # signing out is a POST
    response = client.post(url("logout"))
    assert response.headers["Location"] == url("login")
    assert client.get(url("workspaces")).status_code == 302


def test_sign_in_with_a_wrong_password_says_so(alice: User) -> None:
    response = Client().post(url("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_it_changes_the_password(alice: User) -> None:
    client = signed_in(alice)
    new = "another fine passphrase"
    response = client.post(url("password_change"), {
        "old_password": PASSWORD, "new_password1": new, "new_password2": new,
    }, follow=True)
    assert "Your password has been changed." in messages_of(response)
    alice.refresh_from_db()
    assert alice.check_password(new)


def test_it_resets_a_forgotten_password(alice: User) -> None:
    client = Client()
    response = client.post(url("password_reset"), {"email": "alice@example.com"})
    assert response.headers["Location"] == url("password_reset_done")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your Podium password"
    link = re.search(r"https?://[^/]+(/accounts/password/reset/\S+)", mail.outbox[0].body)
    assert link is not None
    response = client.get(link.group(1), follow=True)
    assert b"Choose a new password" in response.content
    new = "a brand new passphrase"
    response = client.post(response.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert response.headers["Location"] == url("password_reset_complete")
    alice.refresh_from_db()
    assert alice.check_password(new)


# Home and the workspace list ------------------------------------------------------


def test_home_sends_anonymous_visitors_to_sign_in() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(url("login"))


def test_home_returns_to_the_last_workspace_used(alice: User, acme: Workspace) -> None:
    actions.create_workspace(Actor(user=alice), "Beta", slug="beta")
    client = signed_in(alice)
    assert client.get("/").headers["Location"] == url("workspaces")
    client.get(url("ws-members", "beta"))
    assert client.get("/").headers["Location"] == url("ws-overview", "beta")


def test_home_forgets_a_workspace_the_user_left(alice: User, acme: Workspace,
                                                join: Callable[[str, str], User]) -> None:
    bob = join("bob", "developer")
    client = signed_in(bob)
    client.get(url("ws-overview", "acme"))
    client.post(url("ws-leave", "acme"))
    assert client.get("/").headers["Location"] == url("workspace-new")


def test_workspace_list_shows_each_workspace_with_role(alice: User, acme: Workspace, charlie: User) -> None:
    response = signed_in(alice).get(url("workspaces"))
    assert b"Acme" in response.content
    assert b"badge-owner" in response.content
    assert b"Charlie&#x27;s lab" not in response.content


def test_it_creates_a_workspace(alice: User) -> None:
    response = signed_in(alice).post(url("workspace-new"), {"name": "Data Science", "slug": ""})
    assert response.headers["Location"] == url("ws-overview", "data-science")
    assert Membership.objects.get(workspace__slug="data-science", user=alice).role == "owner"


def test_a_taken_url_name_is_a_form_error_not_a_crash(alice: User, acme: Workspace) -> None:
    response = signed_in(alice).post(url("workspace-new"), {"name": "Other", "slug": "acme"})
    assert response.status_code == 400
    assert b"The URL name &#x27;acme&#x27; is taken" in response.content


def test_the_switcher_lists_my_workspaces(alice: User, acme: Workspace) -> None:
    actions.create_workspace(Actor(user=alice), "Beta", slug="beta")
    response = signed_in(alice).get(url("ws-overview", "acme"))
    switcher = response.content.split(b'data-testid="workspace-switcher"')[1].split(b"</details>")[0]
    assert b'href="/w/acme/"' in switcher
    assert b'href="/w/beta/"' in switcher


# Tenancy: anonymous, outsiders and roles --------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_for_the_owner(alice: User, acme: Workspace, page: str) -> None:
    response = signed_in(alice).get(url(page, "acme"))
    assert response.status_code == 200
    assert b'data-workspace="acme"' in response.content


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(acme: Workspace, page: str) -> None:
    response = Client().get(url(page, "acme"))
    assert response.status_code == 302
    assert response.headers["Location"] == f"{url('login')}?next={url(page, 'acme')}"


@pytest.mark.parametrize("page", PAGES)
def test_an_outsider_gets_the_same_404_as_for_a_missing_workspace(acme: Workspace, charlie: User,
                                                                   page: str) -> None:
    client = signed_in(charlie)
    theirs = client.get(url(page, "acme"))
    missing = client.get(url(page, "no-such-workspace"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert b"We could not find that page" in theirs.content


@pytest.mark.parametrize(("page", "role", "status"), [
    ("ws-members", "viewer", 200),
    ("ws-settings", "viewer", 200),
    ("ws-keys", "viewer", 403),
    ("ws-keys", "operator", 403),
    ("ws-keys", "developer", 200),
    ("ws-audit", "developer", 403),
    ("ws-audit", "admin", 200),
])
def test_pages_follow_the_role(join: Callable[[str, str], User], page: str, role: str, status: int) -> None:
    response = signed_in(join("bob", role)).get(url(page, "acme"))
    assert response.status_code == status


def test_the_nav_shows_only_what_the_role_can_open(join: Callable[[str, str], User]) -> None:
    response = signed_in(join("bob", "viewer")).get(url("ws-overview", "acme"))
    assert b'href="/w/acme/members"' in response.content
    assert b'href="/w/acme/keys"' not in response.content
    assert b'href="/w/acme/audit"' not in response.content


def test_every_workspace_page_declares_its_permissions() -> None:
    """The tenancy matrix reads ``podium_perms`` from each ``/w/<slug>/`` view."""
    resolver = get_resolver()
    found = 0
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLPattern) or "accounts" in str(pattern.pattern) or "api" in str(pattern.pattern):
            continue
        for sub in pattern.url_patterns:
            if str(sub.pattern).startswith("w/"):
                found += 1
                assert sub.callback.podium_perms, sub.pattern
    assert found >= 10


# Members and invitations ---------------------------------------------------------------


def test_a_viewer_sees_no_invite_form_and_cannot_invite(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("bob", "viewer"))
    response = client.get(url("ws-members", "acme"))
    assert b'data-testid="invite-form"' not in response.content
    assert b"<select" not in response.content  # no role selects
    response = client.post(url("ws-members", "acme"), {"role": "viewer"})
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_an_admin_invites_and_sees_the_link_once(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("ada", "admin"))
    response = client.post(url("ws-members", "acme"), {"role": "developer", "email": ""})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    link = response.context["invitation_url"]
    token = link.rsplit("/", 1)[1]
    assert token.encode() in response.content
    invitation = Invitation.objects.get()
    assert invitation.role == "developer"
    assert actions.invitation_for_token(token) == invitation
    again = client.get(url("ws-members", "acme"))
    assert token.encode() not in again.content
    assert b"Anyone with the link" in again.content


def test_an_admin_cannot_invite_an_owner(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("ada", "admin"))
    response = client.get(url("ws-members", "acme"))
    assert b'<option value="owner"' not in response.content
    response = client.post(url("ws-members", "acme"), {"role": "owner"})
    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_inviting_an_existing_member_by_email_is_a_form_error(alice: User, acme: Workspace,
                                                              join: Callable[[str, str], User]) -> None:
    join("bob", "viewer")
    response = signed_in(alice).post(url("ws-members", "acme"), {"role": "viewer", "email": "bob@example.com"})
    assert response.status_code == 409
    assert b"bob@example.com is already a member" in response.content


def test_an_admin_revokes_an_invitation(alice: User, acme: Workspace) -> None:
    invitation, _ = actions.create_invitation(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "viewer")
    response = signed_in(alice).post(url("ws-invitation-revoke", "acme", invitation.pk), follow=True)
    assert "Invitation revoked; its link no longer works." in messages_of(response)
    invitation.refresh_from_db()
    assert invitation.status == "revoked"


def test_another_workspaces_invitation_answers_404(alice: User, acme: Workspace, charlie: User) -> None:
    access = workspace_for(Actor(user=charlie), "charlie-lab")
    theirs, _ = actions.create_invitation(Actor(user=charlie), access, "viewer")
    response = signed_in(alice).post(url("ws-invitation-revoke", "acme", theirs.pk))
    assert response.status_code == 404


def test_an_invitation_link_shows_the_workspace_and_role_to_anyone(alice: User, acme: Workspace) -> None:
    _, token = actions.create_invitation(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "operator")
    response = Client().get(url("invitation", token))
    assert response.status_code == 200
    assert b"Acme" in response.content
    assert b"badge-operator" in response.content
    assert f"/accounts/signup?next=/invitations/{token}".encode() in response.content
    assert f"/accounts/login?next=/invitations/{token}".encode() in response.content


def test_accepting_an_invitation_makes_a_member(alice: User, acme: Workspace) -> None:
    _, token = actions.create_invitation(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "operator")
    bob = make_user("bob")
    client = signed_in(bob)
    assert b'data-testid="accept-invitation"' in client.get(url("invitation", token)).content
    response = client.post(url("invitation", token))
    assert response.headers["Location"] == url("ws-overview", "acme")
    assert Membership.objects.get(workspace=acme, user=bob).role == "operator"
    again = client.post(url("invitation", token), follow=True)
    assert "This invitation is accepted. Ask for a new one." in messages_of(again)


def test_anonymous_accept_goes_to_sign_in_and_back(alice: User, acme: Workspace) -> None:
    _, token = actions.create_invitation(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "viewer")
    response = Client().post(url("invitation", token))
    assert response.headers["Location"] == f"{url('login')}?next=/invitations/{token}"


def test_an_unknown_invitation_link_is_a_404_page() -> None:
    response = Client().get(url("invitation", "not-a-token"))
    assert response.status_code == 404
    assert b"This invitation link is not valid" in response.content


def test_an_admin_changes_a_role(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("ada", "admin"))
    bob = join("bob", "viewer")
    response = client.post(url("ws-member-role", "acme", "bob"), {"role": "developer"}, follow=True)
    assert "bob is now developer." in messages_of(response)
    assert Membership.objects.get(user=bob).role == "developer"


def test_an_admin_cannot_make_an_owner_and_is_told_why(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("ada", "admin"))
    bob = join("bob", "viewer")
    response = client.post(url("ws-member-role", "acme", "bob"), {"role": "owner"}, follow=True)
    assert response.status_code == 200
    assert "Only owners can make or unmake owners." in messages_of(response)
    assert Membership.objects.get(user=bob).role == "viewer"


def test_the_last_owner_cannot_be_demoted(alice: User, acme: Workspace) -> None:
    response = signed_in(alice).post(url("ws-member-role", "acme", "alice"), {"role": "admin"}, follow=True)
    assert "This is the workspace's last owner; make someone else an owner first." in messages_of(response)
    assert Membership.objects.get(user=alice).role == "owner"


def test_a_developer_cannot_change_roles(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("dev", "developer"))
    join("bob", "viewer")
    assert client.post(url("ws-member-role", "acme", "bob"), {"role": "admin"}).status_code == 403


def test_an_admin_removes_a_member(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("ada", "admin"))
    bob = join("bob", "viewer")
    response = client.post(url("ws-member-remove", "acme", "bob"), follow=True)
    assert any("Removed bob" in m for m in messages_of(response))
    assert not Membership.objects.filter(user=bob).exists()


def test_removing_someone_of_another_workspace_is_404(alice: User, acme: Workspace, charlie: User) -> None:
    response = signed_in(alice).post(url("ws-member-remove", "acme", "charlie"))
    assert response.status_code == 404


def test_a_member_leaves(join: Callable[[str, str], User]) -> None:
    bob = join("bob", "viewer")
    response = signed_in(bob).post(url("ws-leave", "acme"), follow=True)
    assert response.redirect_chain[0][0] == url("workspaces")
    assert not Membership.objects.filter(user=bob).exists()


def test_the_last_owner_cannot_leave(alice: User, acme: Workspace) -> None:
    response = signed_in(alice).post(url("ws-leave", "acme"), follow=True)
    assert any("The last owner cannot leave" in m for m in messages_of(response))
    assert Membership.objects.filter(user=alice, workspace=acme).exists()


def test_the_members_fragment_is_only_the_table(alice: User, acme: Workspace,
                                                join: Callable[[str, str], User]) -> None:
    join("bob", "viewer")
    response = signed_in(alice).get(url("ws-members", "acme"), {"fragment": "members"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="card" data-fragment="members"')
    assert "<html" not in body
    assert 'data-member="bob"' in body


def test_a_viewer_gets_no_invitations_fragment(join: Callable[[str, str], User]) -> None:
    response = signed_in(join("bob", "viewer")).get(url("ws-members", "acme"), {"fragment": "invitations"})
    assert b'data-fragment="invitations"' not in response.content
    assert b"<html" in response.content  # an unknown fragment name gets the whole page


def test_the_members_page_does_not_query_per_member(alice: User, acme: Workspace,
                                                    join: Callable[[str, str], User]) -> None:
    client = signed_in(alice)
    join("bob", "viewer")
    client.get(url("ws-members", "acme"))  # warm the session

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("ws-members", "acme")).status_code == 200
        return len(queries)

    few = count()
    for i in range(6):
        join(f"member{i}", "developer")
    assert count() == few


# API keys ------------------------------------------------------------------------------


def test_a_key_secret_is_shown_once(alice: User, acme: Workspace) -> None:
    client = signed_in(alice)
    response = client.post(url("ws-keys", "acme"), {"name": "CI", "scopes": ["read", "invoke"]})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.startswith("pod_")
    assert secret.encode() in response.content
    key = ApiKey.objects.get()
    assert key.key_hash == key_lib.digest(secret)
    assert sorted(key.scopes) == ["invoke", "read"]
    listing = client.get(url("ws-keys", "acme"))
    assert secret.encode() not in listing.content
    assert key.prefix.encode() in listing.content


def test_a_developer_is_offered_only_the_scopes_of_the_role(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("dev", "developer"))
    response = client.get(url("ws-keys", "acme"))
    assert b'value="deploy"' in response.content
    assert b'value="admin"' not in response.content
    response = client.post(url("ws-keys", "acme"), {"name": "sneaky", "scopes": ["admin"]})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_a_key_with_an_expiry(alice: User, acme: Workspace) -> None:
    signed_in(alice).post(url("ws-keys", "acme"), {"name": "temp", "scopes": ["read"], "expires_in": "7"})
    key = ApiKey.objects.get()
    assert key.expires_at is not None
    assert dt.timedelta(days=6) < key.expires_at - timezone.now() <= dt.timedelta(days=7)


def test_a_key_needs_a_scope(alice: User, acme: Workspace) -> None:
    response = signed_in(alice).post(url("ws-keys", "acme"), {"name": "none"})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_members_see_their_own_keys_and_admins_all(alice: User, acme: Workspace,
                                                   join: Callable[[str, str], User]) -> None:
    dev = join("dev", "developer")
    actions.create_api_key(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "alice-key", ["read"])
    actions.create_api_key(Actor(user=dev), workspace_for(Actor(user=dev), "acme"), "dev-key", ["read"])
    mine = signed_in(dev).get(url("ws-keys", "acme")).content
    assert b"dev-key" in mine
    assert b"alice-key" not in mine
    everything = signed_in(alice).get(url("ws-keys", "acme")).content
    assert b"dev-key" in everything and b"alice-key" in everything


def test_it_revokes_a_key(alice: User, acme: Workspace) -> None:
    key, _ = actions.create_api_key(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "ci", ["read"])
    response = signed_in(alice).post(url("ws-key-revoke", "acme", key.pk), follow=True)
    assert any("Revoked" in m for m in messages_of(response))
    key.refresh_from_db()
    assert key.status == "revoked"


def test_a_developer_cannot_revoke_someone_elses_key(alice: User, acme: Workspace,
                                                     join: Callable[[str, str], User]) -> None:
    key, _ = actions.create_api_key(Actor(user=alice), workspace_for(Actor(user=alice), "acme"), "ci", ["read"])
    response = signed_in(join("dev", "developer")).post(url("ws-key-revoke", "acme", key.pk))
    assert response.status_code == 404  # not visible to them, so not there
    key.refresh_from_db()
    assert key.status == "active"


# Audit log ------------------------------------------------------------------------------


def test_the_audit_log_filters_by_action_actor_object_and_date(alice: User, acme: Workspace,
                                                               join: Callable[[str, str], User]) -> None:
    client = signed_in(alice)
    client.post(url("ws-keys", "acme"), {"name": "CI", "scopes": ["read"]})
    client.post(url("ws-members", "acme"), {"role": "viewer"})
    old = AuditEvent.objects.create(workspace=acme, actor_label="robot", action="key.revoke",
                                    object_type="apikey", object_repr="old key")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=40))

    def rows(**params: str) -> list[str]:
        response = client.get(url("ws-audit", "acme"), params)
        assert response.status_code == 200
        return [e.action for e in response.context["page_obj"].object_list]

    assert rows() == ["invitation.create", "key.create", "workspace.create", "key.revoke"]
    assert rows(action="key.") == ["key.create", "key.revoke"]
    assert rows(actor="robot") == ["key.revoke"]
    assert rows(object_type="invitation") == ["invitation.create"]
    today = timezone.now().date().isoformat()
    assert rows(since=today, until=today) == ["invitation.create", "key.create", "workspace.create"]
    response = client.get(url("ws-audit", "acme"), {"since": today, "until": "2000-01-01"})
    assert b"The start date is after the end date." in response.content


def test_the_audit_log_is_paginated(alice: User, acme: Workspace) -> None:
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=acme, actor_label="alice", action="key.create", object_type="apikey")
        for _ in range(60)
    )
    client = signed_in(alice)
    first = client.get(url("ws-audit", "acme"), {"action": "key."})
    assert len(first.context["page_obj"].object_list) == 50
    assert b"action=key.&amp;page=2" in first.content
    second = client.get(url("ws-audit", "acme"), {"action": "key.", "page": "2"})
    assert len(second.context["page_obj"].object_list) == 10


# Settings ----------------------------------------------------------------------------------


def test_an_admin_renames_the_workspace(join: Callable[[str, str], User], acme: Workspace) -> None:
    response = signed_in(join("ada", "admin")).post(url("ws-settings", "acme"), {"name": "Acme Labs"}, follow=True)
    assert "Renamed the workspace to Acme Labs." in messages_of(response)
    acme.refresh_from_db()
    assert acme.name == "Acme Labs"


def test_a_viewer_cannot_rename(join: Callable[[str, str], User], acme: Workspace) -> None:
    client = signed_in(join("bob", "viewer"))
    assert b'readonly' in client.get(url("ws-settings", "acme")).content
    assert client.post(url("ws-settings", "acme"), {"name": "Mine"}).status_code == 403


def test_deleting_needs_the_typed_url_name(alice: User, acme: Workspace) -> None:
    client = signed_in(alice)
    response = client.post(url("ws-delete", "acme"), {"confirm": "acm"})
    assert response.status_code == 400
    assert b"type its URL name" in response.content
    assert Workspace.objects.filter(slug="acme").exists()
    response = client.post(url("ws-delete", "acme"), {"confirm": "acme"}, follow=True)
    assert response.redirect_chain[0][0] == url("workspaces")
    assert not Workspace.objects.filter(slug="acme").exists()


def test_only_an_owner_may_delete(join: Callable[[str, str], User]) -> None:
    client = signed_in(join("ada", "admin"))
    assert b'data-testid="delete-form"' not in client.get(url("ws-settings", "acme")).content
    assert client.post(url("ws-delete", "acme"), {"confirm": "acme"}).status_code == 403
    assert Workspace.objects.filter(slug="acme").exists()
