"""The whole first-team story in a real browser against a real server.

Olivia signs up, creates a workspace and invites Mateo; Mateo signs up from
the link and joins; Olivia's open members page shows him without a reload
(the events websocket); Olivia creates an API key and calls the API with it.
Screenshots of each step go to test-artifacts/<test name>/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser_fixtures import *  # noqa: F403 - fixtures

PASSWORD = "correct horse battery staple"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_up(page: Any, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()


def wait_live(page: Any) -> None:
    """Wait until the page's events socket is connected (body[data-live=connected])."""
    page.wait_for_selector("body[data-live=connected]", state="attached")


def test_a_team_signs_up_invites_a_member_and_calls_the_api(
    new_context: Callable[[], Any], podium_server: str, artifacts: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    shot = artifacts

    # Olivia signs up and is asked for her first workspace.
    owner = new_context().new_page()
    owner.goto("/accounts/signup")
    shot(owner, "01-sign-up")
    sign_up(owner, "olivia")
    expect(owner).to_have_url(re.compile(r"/workspaces/new$"))
    expect(owner.get_by_role("heading", name="Create your first workspace")).to_be_visible()
    shot(owner, "02-first-workspace")

    owner.get_by_label("Name", exact=True).fill("Acme ML")
    owner.get_by_role("button", name="Create workspace").click()
    expect(owner).to_have_url(re.compile(r"/w/acme-ml/$"))
    wait_live(owner)
    shot(owner, "03-overview")

    # She invites a developer by link.
    owner.get_by_role("navigation", name="Workspace").get_by_role("link", name="Members").click()
    expect(owner).to_have_url(re.compile(r"/w/acme-ml/members$"))
    owner.get_by_label("Role").select_option("developer")
    owner.get_by_role("button", name="Create invitation link").click()
    link = owner.locator("#invitation-url").input_value()
    assert link.startswith(f"{podium_server}/invitations/")
    wait_live(owner)
    owner.evaluate("window.podiumTestMarker = 'not reloaded'")
    shot(owner, "04-invitation-link")

    # Mateo opens the link in his own browser, signs up from it and accepts.
    member = new_context().new_page()
    member.goto(link)
    expect(member.get_by_text("You are invited to")).to_be_visible()
    shot(member, "05-invitation")
    member.get_by_role("link", name="Create an account to join").click()
    sign_up(member, "mateo")
    expect(member).to_have_url(link)
    member.get_by_role("button", name="Accept and join Acme ML").click()
    expect(member).to_have_url(re.compile(r"/w/acme-ml/$"))
    expect(member.get_by_text("You joined as developer")).to_be_visible()
    shot(member, "06-member-joined")

    # Olivia's open members page shows Mateo without a reload.
    row = owner.locator('[data-testid=members-table] tr[data-member="mateo"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge, select")).to_have_count(1)
    assert owner.evaluate("window.podiumTestMarker") == "not reloaded"
    expect(owner.get_by_text("No pending invitations")).to_be_visible()
    shot(owner, "07-member-appears-live")

    # She creates an API key; the page shows the secret once.
    owner.get_by_role("navigation", name="Workspace").get_by_role("link", name="API keys").click()
    expect(owner.get_by_text("No API keys yet")).to_be_visible()
    owner.get_by_label("Name", exact=True).fill("CI deploys")
    owner.get_by_role("button", name="Create key").click()
    secret = owner.get_by_test_id("key-secret").input_value()
    assert secret.startswith("pod_")
    shot(owner, "08-key-created")

    response = httpx.get(f"{podium_server}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "olivia"

    # Revoking it (after confirming) takes effect at once.
    owner.goto("/w/acme-ml/keys")
    assert secret not in owner.content()
    owner.once("dialog", lambda dialog: dialog.accept())
    owner.get_by_role("button", name="Revoke").click()
    expect(owner.locator("[data-testid=keys-table] .badge-revoked")).to_be_visible()
    shot(owner, "09-key-revoked")
    response = httpx.get(f"{podium_server}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401

    # The audit log recorded all of it; settings offer the typed-name delete to the owner.
    owner.get_by_role("navigation", name="Workspace").get_by_role("link", name="Audit log").click()
    expect(owner.get_by_test_id("audit-table").get_by_text("key.revoke")).to_be_visible()
    shot(owner, "10-audit-log")
    owner.get_by_role("navigation", name="Workspace").get_by_role("link", name="Settings").click()
    delete = owner.get_by_role("button", name="Delete workspace")
    expect(delete).to_be_disabled()
    owner.get_by_label("Type acme-ml to confirm").fill("acme-ml")
    expect(delete).to_be_enabled()
    owner.get_by_test_id("workspace-switcher").locator("summary").click()
    shot(owner, "11-settings-and-switcher")
