"""Property-based tests of the REST API against its own OpenAPI schema (schemathesis).

Every operation is called with generated inputs, authenticated with a real
API key of the Acme workspace; no input may produce a server error, responses
must match the schema, and an operation that needs authentication must refuse
a request without it.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance

from tests.conftest import key_for

schema = schemathesis.openapi.from_wsgi("/api/v1/schema", get_wsgi_application())

CHECKS = [schemathesis.checks.not_a_server_error, response_schema_conformance, ignored_auth]


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
def acme_key(alice, acme, member_of):
    member_of("target-tom", "viewer")
    return key_for(alice, acme, ["read", "invoke", "deploy", "admin"])


def test_the_schema_documents_key_authentication():
    raw = schema.raw_schema
    assert raw["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert len(raw["paths"]) >= 10


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_has_no_server_errors(case, acme_key):
    if case.path_parameters and "slug" in case.path_parameters:
        # Aim at a real workspace; random slugs are covered by the tenancy matrix.
        case.path_parameters["slug"] = "acme"
    case.call_and_validate(headers={"Authorization": f"Bearer {acme_key}"}, checks=CHECKS)
