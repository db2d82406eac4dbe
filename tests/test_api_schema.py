"""Property-based tests of the REST API against its own OpenAPI schema (schemathesis).

Every operation is called with generated inputs, valid and invalid, authenticated with
a real API key of the Acme workspace, and every one of schemathesis' checks runs on
every response: no server error; every status, media type and body is the one the
schema documents; every schema-valid request is accepted and every invalid one refused;
an operation that needs authentication refuses a request without it.

Alice's workspace holds a model ("churn": source, a ready version behind the production
alias, calls with and without a version) and a pending invitation, and cases are aimed
at them (invalid ones too, unless their path is the invalid part), so that responses are
checked with data in them.

The run is bounded (``MAX_EXAMPLES`` generated cases per operation, plus schemathesis'
coverage cases) and derandomized, so it finds the same cases on every run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from tests.conftest import key_for
from tests.serving.conftest import custom_bundle
from webapp.ide import actions as ide_actions
from webapp.serving.models import Alias, AliasRoute, Invocation, ModelVersion
from webapp.workspaces import actions

MAX_EXAMPLES = 25

full_schema = schemathesis.openapi.from_wsgi("/api/v1/schema", get_wsgi_application())
# The prediction routes are the gateway's, in front of Django (their own tests are tests/serving/).
schema = full_schema.exclude(path_regex=r"^/v1/")
# Aim at a real workspace, in valid and invalid cases alike; random slugs are the tenancy matrix's.
schema.config.update(parameters={"path.slug": "acme"})
# No text holds NUL: PostgreSQL cannot store it, so the API refuses it everywhere (test_it_refuses_nul_in_text),
# a rule the schema does not repeat on every string.
schema.config.generation.update(allow_x00=False)

MODEL = """
class Model:
    def predict(self, payload):
        return payload
"""


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    # Django's WSGI handler closes the database connection after each request,
    # which would end the test's transaction; Django's own test client avoids
    # that the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# What valid cases are aimed at; the operations that start sandboxes or builds are left at models that
# do not exist (their inputs are still checked, and the deploy tests run them for real).
SEEDED = {"name": "churn", "number": 1}
NOT_AIMED = ("/test-runs", "/warm-runner", "/deploy")


@pytest.fixture
def acme_key(alice, acme, member_of, settings, tmp_path: Path):
    settings.PODIUM_ARTIFACTS_DIR = tmp_path  # uploaded bundles; their deploys are never queued (no commit)
    member_of("target-tom", "viewer")
    access = alice.access(acme)
    actions.create_invitation(alice.actor, access, "developer", "")
    model = ide_actions.create_from_template(alice.actor, access, "churn", "custom")
    version = ModelVersion.objects.create(
        workspace=acme, model=model, number=1, flavor="custom", manifest={}, bundle_sha256="0" * 64, bundle_size=1,
        status="ready", created_by=alice.user,
    )
    alias = Alias.objects.create(workspace=acme, model=model, name="production")
    AliasRoute.objects.create(alias=alias, version=version, weight=100)
    for reached in (version, None):  # a call a version answered, and one that reached none
        Invocation.objects.create(workspace=acme, model=model, version=reached, alias="production",
                                  request_id="r" * 32, status_code=200 if reached else 503, latency_ms=1.5,
                                  request_bytes=2, response_bytes=2)
    return key_for(alice, acme, ["read", "invoke", "deploy", "admin"])


def _aim_at_seeded_data(case: Any) -> None:
    path = case.meta.components.get(ParameterLocation.PATH) if case.meta else None
    if path is not None and path.mode.is_negative:
        return  # an invalid path parameter is what this case is about
    if case.method == "POST" and case.operation.path.endswith(NOT_AIMED):
        return
    for name, value in SEEDED.items():
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = value


def _meets_rules_the_schema_cannot_state(case: Any) -> None:
    """Make a schema-valid case also meet the rules no JSON schema can express, so that
    the server must accept it: a bundle is a real bundle, an expiry lies in the future, a traffic split
    names each version once with weights that add up to 100, no file path is also a folder of another
    and none is under the reserved ``_podium/``."""
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    if case.operation.path.endswith("/versions") and "bundle" in body:
        body["bundle"] = custom_bundle(MODEL)
    if case.operation.path.endswith("/aliases/{alias}") and body.get("routes"):
        routes = list({route["version"]: route for route in body["routes"]}.values())
        for route in routes:
            route["weight"] = 100 // len(routes)
        routes[0]["weight"] += 100 - sum(route["weight"] for route in routes)
        body["routes"] = routes
    if isinstance(body.get("files"), dict):
        files = body["files"]
        folders = {str(p) for path in files for p in PurePosixPath(path).parents}
        body["files"] = {path: text for path, text in files.items()
                         if path not in folders and PurePosixPath(path).parts[0] != "_podium"}
    if case.operation.path.endswith("/keys") and body.get("expires_at"):
        body["expires_at"] = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()


def test_the_schema_documents_key_authentication():
    raw = schema.raw_schema
    assert raw["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert len(raw["paths"]) >= 10


def test_the_prediction_routes_are_in_the_schema():
    paths = full_schema.raw_schema["paths"]
    for path in ("/v1/models/{name}/predict", "/v1/models/{name}/versions/{number}/predict",
                 "/v1/models/{name}/aliases/{alias}/predict"):
        operation = paths[path]["post"]
        assert operation["security"] == [{"apiKey": []}]
        assert {"200", "401", "403", "404", "410", "413", "415", "502", "503", "504"} <= set(operation["responses"])
        assert operation["responses"]["410"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}


def test_every_operation_documents_its_errors():
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert "401" in documented, (method, path)
            if "{" in path:
                assert "404" in documented, (method, path)
            if "requestBody" in operation:
                assert {"400", "415"} <= documented, (method, path)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, acme_key):
    _aim_at_seeded_data(case)
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _meets_rules_the_schema_cannot_state(case)
    # No `checks=`: every check schemathesis has runs.
    case.call_and_validate(headers={"Authorization": f"Bearer {acme_key}"})


@pytest.mark.django_db
def test_it_refuses_nul_in_text(acme_key):
    from tests.conftest import bearer

    client = bearer(acme_key)
    audit = client.get("/api/v1/workspaces/acme/audit", {"actor": "a\x00b"})
    assert audit.status_code == 400, audit.content
    assert audit.json()["errors"] == {"actor": ["Text may not contain NUL (\\u0000) characters."]}
    member = client.get("/api/v1/workspaces/acme/members/a%00b")
    assert member.status_code == 404, member.content
    source = client.put("/api/v1/workspaces/acme/models/churn/draft",
                        {"files": {}, "base_revision": 1, "sample_input": {"x": "\x00"}}, format="json")
    assert source.status_code == 400, source.content
    assert source.json()["detail"] == "sample_input: Text may not contain NUL (\\u0000) characters."


@pytest.mark.django_db
def test_it_refuses_values_of_another_json_type(acme_key):
    from tests.conftest import bearer

    answer = bearer(acme_key).patch("/api/v1/workspaces/acme", {"allow_outbound_network": 0}, format="json")
    assert answer.status_code == 400
    assert answer.json()["detail"] == "allow_outbound_network: Must be true or false, not 0."
    split = bearer(acme_key).post("/api/v1/workspaces/acme/models/churn/aliases/production",
                                  {"routes": [{"version": 1, "weight": "100"}]}, format="json")
    assert split.status_code == 400
    assert split.json()["errors"] == {"routes": {"0": {"weight": ['Must be a whole number, not "100".']}}}


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["offset=null", "offset=-1", "limit=0", "limit=5_0", "until=",
                                   "since=2026-13-01T00:00:00Z"])
def test_the_audit_log_refuses_bad_paging_and_dates(acme_key, query):
    from tests.conftest import bearer

    answer = bearer(acme_key).get(f"/api/v1/workspaces/acme/audit?{query}")
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == "invalid"
    assert query.split("=")[0] in answer.json()["detail"]
