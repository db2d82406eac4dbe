"""Property-based tests of the REST API against its own OpenAPI schema (schemathesis).

Every operation is called with generated inputs, valid and invalid, authenticated with
a real API key of the Acme workspace, and every one of schemathesis' checks runs on
every response: no server error; every status, media type and body is the one the
schema documents; every schema-valid request is accepted and every invalid one refused;
an operation that needs authentication refuses a request without it.

The run is bounded (``MAX_EXAMPLES`` generated cases per operation, plus schemathesis'
coverage cases) and derandomized, so it finds the same cases on every run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from tests.conftest import key_for
from tests.serving.conftest import custom_bundle

MAX_EXAMPLES = 25

schema = schemathesis.openapi.from_wsgi("/api/v1/schema", get_wsgi_application())
# Aim at a real workspace, in valid and invalid cases alike; random slugs are the tenancy matrix's.
schema.config.update(parameters={"path.slug": "acme"})

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


@pytest.fixture
def acme_key(alice, acme, member_of, settings, tmp_path: Path):
    settings.PODIUM_ARTIFACTS_DIR = tmp_path  # uploaded bundles; their deploys are never queued (no commit)
    member_of("target-tom", "viewer")
    return key_for(alice, acme, ["read", "invoke", "deploy", "admin"])


def _meets_rules_the_schema_cannot_state(case: Any) -> None:
    """Make a schema-valid case also meet the rules no JSON schema can express, so that
    the server must accept it: a bundle is a real bundle, an expiry lies in the future."""
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    if case.operation.path.endswith("/versions") and "bundle" in body:
        body["bundle"] = custom_bundle(MODEL)
    if case.operation.path.endswith("/keys") and body.get("expires_at"):
        body["expires_at"] = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()


def test_the_schema_documents_key_authentication():
    raw = schema.raw_schema
    assert raw["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert len(raw["paths"]) >= 10


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
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _meets_rules_the_schema_cannot_state(case)
    # No `checks=`: every check schemathesis has runs.
    case.call_and_validate(headers={"Authorization": f"Bearer {acme_key}"})
