"""Outbound network for a workspace's sandboxes: only admins allow it, only where the executor can give it
without exposing Podium's own services, and deploys and test runs then ask for it."""

from __future__ import annotations

import pytest

from tests.conftest import client_for
from webapp.serving.deploy import server_spec as _spec
from webapp.serving.models import Model, ModelVersion
from webapp.workspaces.models import AuditEvent, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def nomad_like(monkeypatch):
    from sandbox.executors.local import LocalExecutor

    monkeypatch.setattr(LocalExecutor, "supports_outbound_network", True)


def test_the_local_executor_refuses_with_the_reason(team):
    response = client_for(team["admin"]).patch("/api/v1/workspaces/acme", {"allow_outbound_network": True},
                                               format="json")
    assert response.status_code == 409
    assert "Nomad" in response.json()["detail"] and "own services" in response.json()["detail"]
    assert not Workspace.objects.get(slug="acme").allow_outbound_network


def test_an_admin_allows_it_where_the_executor_can(team, nomad_like):
    response = client_for(team["admin"]).patch("/api/v1/workspaces/acme", {"allow_outbound_network": True},
                                               format="json")
    assert response.status_code == 200 and response.json()["allow_outbound_network"] is True
    assert AuditEvent.objects.filter(action="workspace.network", data__allow_outbound_network=True).exists()


def test_developers_cannot_change_it(team, nomad_like):
    response = client_for(team["developer"]).patch("/api/v1/workspaces/acme", {"allow_outbound_network": True},
                                                   format="json")
    assert response.status_code == 403


def test_deploys_ask_for_the_network_the_workspace_allows(team, nomad_like):
    acme = Workspace.objects.get(slug="acme")
    model = Model.objects.create(workspace=acme, name="m")
    version = ModelVersion.objects.create(workspace=acme, model=model, number=1, flavor="custom", manifest={},
                                          bundle_sha256="0" * 64, bundle_size=1)
    from pathlib import Path

    assert _spec(version, Path("/env")).network == "none"
    acme.allow_outbound_network = True
    acme.save()
    version.refresh_from_db()
    assert _spec(version, Path("/env")).network == "outbound"


def test_the_settings_page_form(team, client, nomad_like):
    client.force_login(team["owner"].user)
    page = client.get("/w/acme/settings")
    assert b'data-testid="network-card"' in page.content
    response = client.post("/w/acme/settings", {"action": "network", "allow_outbound_network": "on"})
    assert response.status_code == 302
    assert Workspace.objects.get(slug="acme").allow_outbound_network
    client.post("/w/acme/settings", {"action": "network"})
    assert not Workspace.objects.get(slug="acme").allow_outbound_network
