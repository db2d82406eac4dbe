"""The model pages through Django's test client, on the real database.

Versions are rows made here with a status (no sandbox is started): these tests
are about what each member sees and what the page forms do. The deploy itself,
live updates and "try it" against a running model are in
tests/serving/test_model_browser.py.

People: alice owns Acme; ``team`` adds one member per role; charlie has his
own workspace and should have no access to Alice's models.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import Person
from webapp.serving import actions, recorder
from webapp.serving.models import Alias, Invocation, Model, ModelVersion
from webapp.workspaces.models import Workspace
from webapp.workspaces.scopes import ROLE_ORDER

pytestmark = pytest.mark.django_db

STEPS_DONE = [
    {"name": "environment", "status": "done", "started_at": "2030-01-01T10:00:00+00:00",
     "finished_at": "2030-01-01T10:00:04+00:00"},
    {"name": "start", "status": "done", "started_at": "2030-01-01T10:00:04+00:00",
     "finished_at": "2030-01-01T10:00:05+00:00"},
    {"name": "ready", "status": "done", "started_at": "2030-01-01T10:00:05+00:00",
     "finished_at": "2030-01-01T10:00:06.500000+00:00"},
]


def signed_in(person: Person) -> Client:
    client = Client()
    client.force_login(person.user)
    return client


def make_model(workspace: Workspace, name: str = "churn", **fields: Any) -> Model:
    return Model.objects.create(workspace=workspace, name=name, **fields)


def make_version(model: Model, number: int, status: str = "ready", **fields: Any) -> ModelVersion:
    fields.setdefault("steps", STEPS_DONE)
    return ModelVersion.objects.create(
        workspace=model.workspace, model=model, number=number, flavor="custom", manifest={},
        bundle_sha256="ab" * 32, bundle_size=2048, status=status, **fields,
    )


def route(person: Person, model: Model, routes: list[tuple[int, int]], alias: str = "production") -> None:
    actions.set_routes(person.actor, person.access(model.workspace), model, alias, routes)


def routes_of(model: Model, alias: str = "production") -> list[tuple[int, int]]:
    return actions.current_routes(Alias.objects.get(model=model, name=alias))


def call(model: Model, version: ModelVersion | None, status: int = 200, minutes_ago: float = 1,
         latency: float = 12.5, error: str = "") -> Invocation:
    return Invocation.objects.create(
        workspace=model.workspace, model=model, version=version, alias="production",
        request_id=f"r{Invocation.objects.count()}", status_code=status, latency_ms=latency, request_bytes=20,
        response_bytes=40, error=error,
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
    )


@pytest.fixture
def churn(alice: Person, acme: Workspace) -> Model:
    """churn with v1 and v2 ready, production on v2 (after v1), and a failed v3."""
    model = make_model(acme, description="Who is about to leave")
    v1 = make_version(model, 1)
    make_version(model, 2)
    make_version(model, 3, status="failed", failed_step="ready",
                 error="The model server stopped before it was ready: RuntimeError: the weights are corrupt")
    route(alice, model, [(1, 100)])
    route(alice, model, [(2, 100)])
    call(model, v1, latency=8.0)
    return model


def page_urls(model: str = "churn", number: int = 1) -> list[str]:
    return [reverse("ws-models", args=["acme"]), reverse("ws-model", args=["acme", model]),
            reverse("ws-model-version", args=["acme", model, number])]


def post_urls(model: str = "churn") -> dict[str, tuple[str, dict[str, str]]]:
    return {
        "promote": (reverse("ws-model-promote", args=["acme", model]), {"alias": "production", "version": "1"}),
        "split": (reverse("ws-model-split", args=["acme", model]),
                  {"alias": "production", "weight-1": "50", "weight-2": "50"}),
        "rollback": (reverse("ws-model-rollback", args=["acme", model]), {"alias": "production"}),
        "stop": (reverse("ws-model-version-stop", args=["acme", model, 1]), {}),
        "delete-version": (reverse("ws-model-version-delete", args=["acme", model, 1]), {}),
        "delete-model": (reverse("ws-model-delete", args=["acme", model]), {"confirm": model}),
    }


# The list ---------------------------------------------------------------------------


def test_an_empty_list_shows_how_to_deploy_with_this_podiums_url(alice: Person, acme: Workspace) -> None:
    response = signed_in(alice).get(reverse("ws-models", args=["acme"]))
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    assert "No models yet" in body
    assert "pip install -e client/" in body
    assert f'podium.login("{settings.PODIUM_URL}", "pod_…")' in body
    assert 'podium.deploy(model, name="churn")' in body
    assert f"export PODIUM_URL={settings.PODIUM_URL}" in body
    assert "podium deploy ./my-model --name churn" in body


def test_the_list_shows_production_latest_version_and_calls_of_the_last_hour(churn: Model) -> None:
    call(churn, None, status=404, minutes_ago=90)  # outside the hour
    response = signed_in_owner(churn).get(reverse("ws-models", args=["acme"]))
    row = response.content.decode().split('data-model="churn"')[1].split("</tr>")[0]
    assert "Who is about to leave" in row
    assert ">v2</span>" in row  # production, all traffic
    assert ">v3</a>" in row and 'data-status="failed"' in row
    assert '<td class="num">1</td>' in row
    assert 'href="/w/acme/models/churn"' in row


def signed_in_owner(model: Model) -> Client:
    owner = model.workspace.memberships.get(role="owner").user
    client = Client()
    client.force_login(owner)
    return client


def test_the_list_does_not_query_per_model(alice: Person, acme: Workspace) -> None:
    client = signed_in(alice)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("ws-models", args=["acme"])).status_code == 200
        return len(queries)

    first = make_model(acme, "m0")
    make_version(first, 1)
    route(alice, first, [(1, 100)])
    count()  # the first visit also remembers the workspace in the session
    one = count()
    for i in range(1, 6):
        model = make_model(acme, f"m{i}")
        make_version(model, 1)
        make_version(model, 2)
        route(alice, model, [(1, 50), (2, 50)])
        call(model, None)
    assert count() == one


def test_the_nav_links_to_models_for_every_role(team: dict[str, Person]) -> None:
    for person in team.values():
        response = signed_in(person).get(reverse("ws-overview", args=["acme"]))
        assert b'href="/w/acme/models"' in response.content


# Who sees what ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLE_ORDER)
def test_every_model_page_renders_for_each_role(team: dict[str, Person], churn: Model, role: str) -> None:
    client = signed_in(team[role])
    for url in [*page_urls(), reverse("ws-model-version", args=["acme", "churn", 3])]:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_see_no_deploy_forms_and_their_posts_are_refused(
    team: dict[str, Person], churn: Model, role: str
) -> None:
    client = signed_in(team[role])
    body = client.get(reverse("ws-model", args=["acme", "churn"])).content.decode()
    for marker in ('data-testid="promote-form"', 'data-testid="split-form"', 'data-testid="rollback-production"',
                   "/stop", 'id="read-only"'):
        assert (marker in body) is (marker == 'id="read-only"'), marker
    assert ('data-testid="try-form"' in body) is (role == "operator")
    for name, (url, data) in post_urls().items():
        response = client.post(url, data)
        assert response.status_code == 403, name
        assert b"You do not have permission" in response.content or b"403" in response.content
    assert routes_of(churn) == [(2, 100)]
    assert ModelVersion.objects.get(model=churn, number=1).status == "ready"  # neither stopped nor deleted


def test_a_viewer_cannot_call_the_model_from_the_page(team: dict[str, Person], churn: Model) -> None:
    response = signed_in(team["viewer"]).post(reverse("ws-model-try", args=["acme", "churn"]), "{}",
                                              content_type="application/json")
    assert response.status_code == 403
    assert "request_id" not in response.content.decode()


def test_a_developer_sees_the_deploy_forms(team: dict[str, Person], churn: Model) -> None:
    body = signed_in(team["developer"]).get(reverse("ws-model", args=["acme", "churn"])).content.decode()
    assert 'data-testid="promote-form"' in body and 'data-testid="split-form"' in body
    assert 'data-testid="rollback-production"' in body and "Roll back to v1" in body
    # v1 is ready and takes no traffic: it can be stopped; v2 serves production: it cannot.
    assert "/w/acme/models/churn/versions/1/stop" in body
    assert "/w/acme/models/churn/versions/2/stop" not in body


@pytest.mark.parametrize("which", [0, 1, 2])
def test_an_outsider_gets_the_same_404_as_for_a_missing_workspace(
    churn: Model, charlie: Person, which: int
) -> None:
    client = signed_in(charlie)
    theirs = client.get(page_urls()[which])
    missing = client.get(page_urls()[which].replace("/w/acme/", "/w/no-such-workspace/"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    if which:
        # Inside his own workspace, Alice's model name looks exactly like a missing one.
        own = client.get(page_urls()[which].replace("/w/acme/", "/w/charlie-lab/"))
        assert own.status_code == 404 and own.content == missing.content


def test_an_outsiders_posts_answer_404_and_change_nothing(churn: Model, charlie: Person) -> None:
    client = signed_in(charlie)
    for name, (url, data) in post_urls().items():
        assert client.post(url, data).status_code == 404, name
    assert client.post(reverse("ws-model-try", args=["acme", "churn"]), "{}",
                       content_type="application/json").status_code == 404
    assert routes_of(churn) == [(2, 100)]
    assert ModelVersion.objects.filter(model=churn).count() == 3  # nothing deleted


def test_anonymous_visitors_are_sent_to_sign_in(churn: Model) -> None:
    for url in page_urls():
        response = Client().get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith(reverse("login"))


def test_a_missing_version_is_404(alice: Person, churn: Model) -> None:
    assert signed_in(alice).get(reverse("ws-model-version", args=["acme", "churn", 99])).status_code == 404


# The model page ------------------------------------------------------------------------------


def test_the_model_page_shows_endpoint_snippets_routing_and_versions(alice: Person, churn: Model) -> None:
    response = signed_in(alice).get(reverse("ws-model", args=["acme", "churn"]))
    body = html.unescape(response.content.decode())
    endpoint = f"{settings.PODIUM_URL}/v1/models/churn/predict"
    assert f'value="{endpoint}"' in body
    assert f"curl -X POST {endpoint}" in body
    assert f'    "{endpoint}",' in body  # the Python snippet
    assert 'aria-label="version 2 100%"' in body
    assert "Failed at the ready step." in body and "the weights are corrupt" in body
    versions = response.context["versions"]
    assert [row.version.number for row in versions] == [3, 2, 1]
    assert [s["seconds"] for s in versions[0].steps] == [4.0, 1.0, 1.5]
    assert versions[1].routed_by == [("production", 100)]


def test_the_model_page_does_not_query_per_version(alice: Person, acme: Workspace) -> None:
    model = make_model(acme)
    make_version(model, 1)
    route(alice, model, [(1, 100)])
    client = signed_in(alice)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("ws-model", args=["acme", "churn"])).status_code == 200
        return len(queries)

    count()  # the first visit also remembers the workspace in the session
    one = count()
    for number in range(2, 8):
        version = make_version(model, number)
        call(model, version)
    route(alice, model, [(6, 50), (7, 50)])
    route(alice, model, [(5, 100)], alias="staging")
    assert count() == one


def test_the_model_page_charts_the_last_hour_per_version(alice: Person, churn: Model) -> None:
    v2 = ModelVersion.objects.get(model=churn, number=2)
    for latency in (10, 20, 30, 40):
        call(churn, v2, latency=latency, minutes_ago=0)
    call(churn, v2, status=500, error="boom", minutes_ago=0)
    call(churn, v2, status=422, error="predict() rejected the input", minutes_ago=0)
    call(churn, v2, minutes_ago=75)  # outside the window
    response = signed_in(alice).get(reverse("ws-model", args=["acme", "churn"]))
    metrics = response.context["metrics"]
    assert len(metrics["minutes"]) == 60
    assert [s["label"] for s in metrics["versions"]] == ["v2", "v1"]
    v2_series = metrics["versions"][0]
    # Calls the model refused (4xx) are counted apart from calls that failed (5xx).
    assert (v2_series["total"], v2_series["total_errors"], v2_series["total_refused"]) == (6, 1, 1)
    minute = max(i for i, n in enumerate(v2_series["requests"]) if n)
    assert minute >= 58  # this minute (or the one before, if the clock just turned)
    assert v2_series["requests"][minute] == 6
    assert v2_series["error_rate"][minute] == v2_series["refused_rate"][minute] == 16.67
    # Latencies 10, 12.5, 12.5 (the failed and refused calls), 20, 30, 40: PostgreSQL's continuous percentiles.
    assert (v2_series["p50"][minute], v2_series["p95"][minute], v2_series["p99"][minute]) == (16.25, 37.5, 39.5)
    assert v2_series["latest"] == {"p50": 16.25, "p95": 37.5, "p99": 39.5}
    assert v2_series["p50"][0] is None  # no calls that minute: a gap, not a zero
    body = response.content.decode()
    assert "6 calls · 1 refused (4xx) · 1 failed (5xx)" in body
    assert '<script id="metrics-data" type="application/json">' in body
    assert 'data-chart="latency"' in body


def test_the_model_page_lists_recent_calls(alice: Person, churn: Model) -> None:
    v2 = ModelVersion.objects.get(model=churn, number=2)
    call(churn, v2, status=500, error="ValueError: bad input")
    body = signed_in(alice).get(reverse("ws-model", args=["acme", "churn"])).content.decode()
    calls = body.split('data-testid="calls-table"')[1]
    assert calls.count("<tr data-call=") == 2
    assert "http-5xx" in calls and "ValueError: bad input" in calls
    assert "12.5 ms" in calls and "20\xa0bytes" in calls


def test_fragments_are_only_their_part(alice: Person, churn: Model) -> None:
    client = signed_in(alice)
    for name in ("versions", "routing", "forms", "metrics", "calls"):
        response = client.get(reverse("ws-model", args=["acme", "churn"]), {"fragment": name})
        body = response.content.decode().strip()
        assert body.startswith(f'<div class="card" data-fragment="{name}"') or body.startswith(
            f'<div data-fragment="{name}"'), name
        assert "<html" not in body


# Page forms --------------------------------------------------------------------------------------


def test_promote_moves_the_alias(alice: Person, churn: Model) -> None:
    response = signed_in(alice).post(*post_urls()["promote"], follow=True)
    assert response.redirect_chain[-1][0] == reverse("ws-model", args=["acme", "churn"])
    assert "production now sends all traffic to version 1." in response.content.decode()
    assert routes_of(churn) == [(1, 100)]


def test_promote_to_a_new_alias_creates_it(alice: Person, churn: Model) -> None:
    signed_in(alice).post(reverse("ws-model-promote", args=["acme", "churn"]), {"alias": "staging", "version": "1"})
    assert routes_of(churn, "staging") == [(1, 100)]
    assert routes_of(churn) == [(2, 100)]


def test_promoting_a_failed_version_shows_why(alice: Person, churn: Model) -> None:
    response = signed_in(alice).post(reverse("ws-model-promote", args=["acme", "churn"]),
                                     {"alias": "production", "version": "3"})
    assert response.status_code == 409
    assert "Version 3 is failed, not ready; only ready versions can take traffic." in response.content.decode()
    assert routes_of(churn) == [(2, 100)]


def test_a_bad_alias_name_is_a_form_error(alice: Person, churn: Model) -> None:
    response = signed_in(alice).post(reverse("ws-model-promote", args=["acme", "churn"]),
                                     {"alias": "Not An Alias", "version": "1"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Alias names use lowercase letters" in body
    assert 'value="Not An Alias"' in body  # what was typed stays in the form


def test_split_sends_traffic_to_both_versions(alice: Person, churn: Model) -> None:
    url, _ = post_urls()["split"]
    response = signed_in(alice).post(url, {"alias": "production", "weight-1": "10", "weight-2": "90"}, follow=True)
    assert "production now splits traffic: v1 10%, v2 90%." in response.content.decode()
    assert routes_of(churn) == [(1, 10), (2, 90)]
    assert 'aria-label="version 2 90%, version 1 10%"' in response.content.decode()


@pytest.mark.parametrize(("data", "status", "message"), [
    ({"weight-1": "60", "weight-2": "60"}, 400, "Traffic weights must be positive and add up to 100."),
    ({"weight-1": "100", "weight-2": ""}, 400, "Give two or more versions a weight to split traffic"),
    ({"weight-1": "50", "weight-2": "half"}, 400, "The weight of version 2 must be a whole number of percent."),
    ({"weight-1": "50", "weight-3": "50"}, 409, "Version 3 is failed, not ready"),
    ({"weight-1": "50", "weight-9": "50"}, 404, "churn has no version 9."),
])
def test_a_bad_split_shows_why_and_keeps_the_routes(alice: Person, churn: Model, data: dict[str, str], status: int,
                                                     message: str) -> None:
    url, _ = post_urls()["split"]
    response = signed_in(alice).post(url, {"alias": "production", **data})
    assert response.status_code == status
    body = response.content.decode()
    assert message in body
    assert body.count('class="form-error"') == 1
    assert routes_of(churn) == [(2, 100)]


def test_rollback_restores_the_previous_routing(alice: Person, churn: Model) -> None:
    response = signed_in(alice).post(*post_urls()["rollback"], follow=True)
    assert "Rolled production back to version 1." in response.content.decode()
    assert routes_of(churn) == [(1, 100)]


def test_rollback_without_history_says_so(alice: Person, acme: Workspace) -> None:
    model = make_model(acme, "fresh")
    make_version(model, 1)
    route(alice, model, [(1, 100)])
    response = signed_in(alice).post(reverse("ws-model-rollback", args=["acme", "fresh"]), {"alias": "production"})
    assert response.status_code == 409
    assert "'production' has no earlier routing to roll back to." in html.unescape(response.content.decode())


def test_stop_an_unrouted_version(alice: Person, churn: Model) -> None:
    response = signed_in(alice).post(*post_urls()["stop"], follow=True)
    assert "Stopped version 1 of churn." in response.content.decode()
    assert ModelVersion.objects.get(model=churn, number=1).status == "stopped"


def test_a_version_that_takes_traffic_is_not_stopped(alice: Person, churn: Model) -> None:
    response = signed_in(alice).post(reverse("ws-model-version-stop", args=["acme", "churn", 2]), follow=True)
    assert "Version 2 still takes traffic" in response.content.decode()
    assert ModelVersion.objects.get(model=churn, number=2).status == "ready"


# Try it (without a running model; tests/serving/test_model_browser.py calls a real one) ---------------


def try_it(client: Client, body: str, model: str = "churn") -> Any:
    return client.post(reverse("ws-model-try", args=["acme", model]), body, content_type="application/json")


def recorded(request_id: str) -> Invocation:
    """The call record of ``request_id``: written by this flush, or by the recorder's own thread."""
    deadline = time.monotonic() + 5
    while True:
        recorder.flush()
        found = Invocation.objects.filter(request_id=request_id).select_related("version").first()
        if found is not None or time.monotonic() > deadline:
            assert found is not None, f"call {request_id} was not recorded"
            return found
        time.sleep(0.05)


# Recorded calls are written by another thread (its own connection): these tests commit.
@pytest.mark.django_db(transaction=True)
def test_try_without_a_ready_replica_answers_503_and_is_recorded(team: dict[str, Person], churn: Model) -> None:
    response = try_it(signed_in(team["operator"]), '{"x": 1}')
    assert response.status_code == 503
    payload = response.json()
    assert payload["status"] == 503 and payload["version"] is None and payload["alias"] == "production"
    assert payload["answer"] == {"detail": "No replica of 'churn' is ready yet; retry shortly."}
    call = recorded(payload["request_id"])
    assert call.status_code == 503 and call.version is None and call.api_key is None
    assert call.model == churn and call.alias == "production"
    assert call.request_bytes == len('{"x": 1}') and call.error.startswith("No replica")


@pytest.mark.django_db(transaction=True)
def test_try_without_production_answers_404(alice: Person, acme: Workspace) -> None:
    make_model(acme, "lonely")
    response = try_it(signed_in(alice), "{}", model="lonely")
    assert response.status_code == 404
    assert "has no 'production' alias yet" in json.dumps(response.json()["answer"])
    assert recorded(response.json()["request_id"]).status_code == 404


@pytest.mark.parametrize("body", ["", "{not json"])
def test_try_refuses_a_body_that_is_not_json(alice: Person, churn: Model, body: str) -> None:
    response = try_it(signed_in(alice), body)
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


# The version page ---------------------------------------------------------------------------------


def test_the_version_page_shows_steps_error_requirements_and_resources(alice: Person, churn: Model) -> None:
    version = ModelVersion.objects.get(model=churn, number=3)
    version.requirements = "scikit-learn==1.5.2\nnumpy==2.1.0"
    version.cpu, version.memory_mib, version.gpus = 2.0, 4096, 1
    version.steps = [{**STEPS_DONE[0]}, {**STEPS_DONE[1]},
                     {**STEPS_DONE[2], "status": "failed"}]
    version.save()
    response = signed_in(alice).get(reverse("ws-model-version", args=["acme", "churn", 3]))
    body = response.content.decode()
    assert "Failed at the Ready check step" in body and "the weights are corrupt" in body
    steps = body.split('data-testid="steps-table"')[1].split("</table>")[0]
    assert "4.0 s" in steps and "1.5 s" in steps and "status-step-failed" in steps
    assert "scikit-learn==1.5.2" in body and "numpy==2.1.0" in body
    assert "4096 MiB" in body and "2 cores" in body
    assert f"{settings.PODIUM_URL}/v1/models/churn/versions/3/predict" in body
    assert 'data-source="runtime"' in body  # it failed after the build: its runtime log says why


def test_the_version_fragment_follows_the_deploy(alice: Person, churn: Model) -> None:
    version = make_version(churn, 4, status="building", steps=[
        {"name": "environment", "status": "running", "started_at": timezone.now().isoformat(), "finished_at": None},
        {"name": "start", "status": "pending", "started_at": None, "finished_at": None},
        {"name": "ready", "status": "pending", "started_at": None, "finished_at": None},
    ])
    client = signed_in(alice)
    url = reverse("ws-model-version", args=["acme", "churn", 4])
    full = client.get(url).content.decode()
    assert 'data-source="build"' in full and "In progress: this updates live." in full
    fragment = client.get(url, {"fragment": "version"}).content.decode()
    assert fragment.strip().startswith('<div class="card" data-fragment="version"')
    assert 'data-version-status="building"' in fragment
    version.status = "ready"
    version.save()
    assert 'data-version-status="ready"' in client.get(url, {"fragment": "version"}).content.decode()


def test_the_model_page_routes_in_every_role_have_permissions() -> None:
    from django.urls import get_resolver

    names = {"ws-models", "ws-model", "ws-model-promote", "ws-model-split", "ws-model-rollback", "ws-model-try",
             "ws-model-version", "ws-model-version-stop"}
    found: dict[str, dict[str, str]] = {}
    for entry in get_resolver().url_patterns:
        for sub in getattr(entry, "url_patterns", []):
            if getattr(sub, "name", None) in names:
                found[sub.name] = sub.callback.podium_perms
    assert found == {
        "ws-models": {"GET": "models.read"}, "ws-model": {"GET": "models.read"},
        "ws-model-promote": {"POST": "models.deploy"}, "ws-model-split": {"POST": "models.deploy"},
        "ws-model-rollback": {"POST": "models.deploy"}, "ws-model-try": {"POST": "models.invoke"},
        "ws-model-version": {"GET": "models.read"}, "ws-model-version-stop": {"POST": "models.deploy"},
    }



def test_try_it_and_the_snippets_start_from_the_models_sample_input(alice: Person, churn: Model) -> None:
    from webapp.ide.models import ModelSource

    # (PostgreSQL's jsonb keeps keys shortest first.)
    ModelSource.objects.create(workspace=churn.workspace, model=churn, files={},
                               sample_input={"n": None, "text": "it's great"})
    body = html.unescape(signed_in(alice).get(reverse("ws-model", args=["acme", "churn"])).content.decode())
    assert """>{"n": null, "text": "it's great"}</textarea>""" in body  # the Try it form
    assert """-d '{"n": null, "text": "it'\\''s great"}'""" in body  # one shell word
    assert """json={'n': None, 'text': "it's great"},""" in body  # a Python literal


def test_a_trusss_example_input_is_the_sample_when_the_editor_has_none(alice: Person, churn: Model) -> None:
    v2 = ModelVersion.objects.get(model=churn, number=2)
    v2.manifest = {**v2.manifest, "truss": {"config": {"model_metadata": {"example_model_input": {"prompt": "hi"}}}}}
    v2.save(update_fields=["manifest"])
    body = html.unescape(signed_in(alice).get(reverse("ws-model", args=["acme", "churn"])).content.decode())
    assert """-d '{"prompt": "hi"}'""" in body


def test_the_overview_shows_models_endpoints_and_recent_failures(alice: Person, churn: Model,
                                                                 member_of: Any) -> None:
    v2 = ModelVersion.objects.get(model=churn, number=2)
    call(churn, v2, minutes_ago=0)
    call(churn, v2, status=502, error="the replica died", minutes_ago=0)
    viewer = member_of("vic", "viewer")
    for person in (alice, viewer):
        body = html.unescape(signed_in(person).get(reverse("ws-overview", args=["acme"])).content.decode())
        row = body[body.index('data-overview-model="churn"'):][:900]
        assert "v2" in row and "/v1/models/churn/predict" in row
        cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', row)
        assert cells == ["3", "1"], row  # calls in the last hour (v1's is 1 minute old), and the one 5xx
        failures = body[body.index('data-testid="overview-failures"'):][:1500]
        assert "churn v3" in failures and "failed at the ready step" in failures
        assert "RuntimeError: the weights are corrupt" in failures
