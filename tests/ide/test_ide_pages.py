"""The model editor's pages through Django's test client: who may open them, what each role sees,
and that only the editor page loads the editor's bundle (Monaco).

People: alice owns Acme; ``team`` adds one member per role; charlie has his own workspace and
should have no access to Alice's models. The editor's behaviour in a real browser is in
tests/ide/test_ide_browser.py.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.conftest import Person
from webapp.serving.models import Model
from webapp.workspaces.models import Workspace
from webapp.workspaces.scopes import ROLE_ORDER, ROLES

pytestmark = pytest.mark.django_db

EDITOR_SCRIPT = "build/ide.js"
PICKER_SCRIPT = "build/ide-new.js"


def signed_in(person: Person) -> Client:
    client = Client()
    client.force_login(person.user)
    return client


@pytest.fixture
def churn(acme: Workspace) -> Model:
    return Model.objects.create(workspace=acme, name="churn")


def scripts(html: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"', html)


# Who may open the pages ----------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_sign_in(client, churn):
    for url in ("/w/acme/models/churn/edit", "/w/acme/models/new"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login"), url


def test_it_validates_ownership(churn, charlie):
    """Charlie's answer for Alice's model is byte for byte the answer for a model or workspace that does not exist."""
    client = signed_in(charlie)
    theirs = client.get("/w/acme/models/churn/edit")
    missing_workspace = client.get("/w/no-such-ws/models/churn/edit")
    assert theirs.status_code == missing_workspace.status_code == 404
    assert theirs.content == missing_workspace.content
    assert client.get("/w/acme/models/new").content == client.get("/w/no-such-ws/models/new").content


def test_a_missing_model_answers_404(alice, churn):
    assert signed_in(alice).get("/w/acme/models/nope/edit").status_code == 404


def test_models_new_is_the_template_picker_not_a_model_named_new(alice, acme):
    response = signed_in(alice).get("/w/acme/models/new")
    assert response.status_code == 200
    assert b"data-new-model" in response.content


@pytest.mark.parametrize("role", ROLE_ORDER)
def test_the_editor_follows_each_roles_permissions(team, churn, role):
    response = signed_in(team[role]).get("/w/acme/models/churn/edit")
    assert response.status_code == 200
    html = response.content.decode()
    can_write = "models.write" in ROLES[role]
    can_deploy = "models.deploy" in ROLES[role]
    assert f'data-can-write="{str(can_write).lower()}"' in html
    assert f'data-can-deploy="{str(can_deploy).lower()}"' in html
    assert ('data-action="save"' in html) is can_write
    assert ('data-action="test"' in html) is can_write
    assert ('data-action="deploy"' in html) is can_deploy
    assert ('data-action="new-file"' in html) is can_write
    assert ('data-testid="read-only"' in html) is not can_write
    assert ('data-sample readonly' in html) is not can_write


def test_viewers_and_operators_get_a_read_only_editor(team, churn):
    for role in ("viewer", "operator"):
        html = signed_in(team[role]).get("/w/acme/models/churn/edit").content.decode()
        assert "Read only" in html
        assert 'data-action="deploy"' not in html and 'data-action="save"' not in html


@pytest.mark.parametrize("role", ROLE_ORDER)
def test_the_template_picker_is_for_those_who_can_write_models(team, acme, role):
    response = signed_in(team[role]).get("/w/acme/models/new")
    assert response.status_code == (200 if "models.write" in ROLES[role] else 403)


# What the pages load ----------------------------------------------------------------------------


def test_the_editor_page_loads_the_editor_bundle(alice, churn):
    html = signed_in(alice).get("/w/acme/models/churn/edit").content.decode()
    assert any(src.endswith(EDITOR_SCRIPT) for src in scripts(html))
    assert "build/ide.css" in html
    assert "build/editor.worker.js" in html  # Monaco's worker comes from Podium, not a CDN
    # Every script, stylesheet and link is Podium's own (not a CDN's): no absolute or protocol-relative URL.
    assert [u for u in re.findall(r'(?:src|href)="([^"]+)"', html) if u.startswith(("http:", "https:", "//"))] == []


def test_pages_that_do_not_edit_code_do_not_load_the_editor(alice, churn):
    client = signed_in(alice)
    for url in ("/w/acme/", "/w/acme/models", "/w/acme/models/churn", "/w/acme/models/new", "/w/acme/members"):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert not any(src.endswith(EDITOR_SCRIPT) for src in scripts(html)), url
        assert "build/ide.css" not in html, url
    assert any(src.endswith(PICKER_SCRIPT) for src in scripts(client.get("/w/acme/models/new").content.decode()))


def test_the_editor_knows_the_models_api_and_endpoint(alice, churn, settings):
    html = signed_in(alice).get("/w/acme/models/churn/edit").content.decode()
    assert 'data-api="/api/v1/workspaces/acme/models/churn"' in html
    assert f'data-endpoint="{settings.PODIUM_URL}/v1/models/churn/predict"' in html
    assert 'data-try-url="/w/acme/models/churn/try"' in html
    assert "csrfmiddlewaretoken" in html


# Links to the pages ------------------------------------------------------------------------------


def test_the_model_page_links_to_its_code(team, churn):
    writer = signed_in(team["developer"]).get("/w/acme/models/churn").content.decode()
    assert 'href="/w/acme/models/churn/edit"' in writer and "Edit code" in writer
    viewer = signed_in(team["viewer"]).get("/w/acme/models/churn").content.decode()
    assert 'href="/w/acme/models/churn/edit"' in viewer and "View code" in viewer


def test_the_model_list_offers_a_new_model_to_writers_only(team, churn):
    assert 'href="/w/acme/models/new"' in signed_in(team["developer"]).get("/w/acme/models").content.decode()
    assert 'href="/w/acme/models/new"' not in signed_in(team["viewer"]).get("/w/acme/models").content.decode()


def _initial(html: str) -> dict:
    import json

    found = re.search(r'<script id="podium-editor-initial" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the editor page carries no initial files"
    return json.loads(found.group(1))


def test_the_editor_page_carries_the_source_and_the_members_own_draft(alice, team, churn):
    from webapp.ide.models import Draft, ModelSource

    ModelSource.objects.create(workspace=churn.workspace, model=churn, files={"model.py": "x = 1\n"}, revision=3)
    Draft.objects.create(workspace=churn.workspace, model=churn, user=team["developer"].user,
                         files={"model.py": "x = 2  # mine\n"}, base_revision=3)

    mine = _initial(signed_in(team["developer"]).get("/w/acme/models/churn/edit").content.decode())
    owners = _initial(signed_in(alice).get("/w/acme/models/churn/edit").content.decode())
    viewers = _initial(signed_in(team["viewer"]).get("/w/acme/models/churn/edit").content.decode())

    assert mine["source"]["files"] == {"model.py": "x = 1\n"} and mine["source"]["revision"] == 3
    assert mine["draft"]["files"] == {"model.py": "x = 2  # mine\n"}
    assert owners["draft"] is None and owners["source"]["revision"] == 3  # another member's draft stays theirs
    assert viewers["draft"] is None
