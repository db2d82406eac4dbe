r"""The REST API's OpenAPI schema: every operation documents every status it answers.

drf-spectacular describes what a view returns when it succeeds. :class:`PodiumAutoSchema`
(``DEFAULT_SCHEMA_CLASS``) adds the error responses, all with the ``Error`` body of
``core.api`` (``{"detail", "code"}``, plus ``"errors"`` for validation failures), from what
the operation is, so a new route documents them without a decorator:

======  =====================================================  ============================================
status  when                                                   documented on
======  =====================================================  ============================================
400     input that does not parse or validate                  operations with a request body or query
                                                               parameters
401     a malformed, unknown, revoked or expired key; no       every operation (a bad key is refused even
        credentials where the route needs them                 where none is needed)
403     the role or the key's scopes do not allow it; a        writes, and reads whose view declares a
        signed-in session's write without its CSRF token       permission for the method in ``perms``
404     the workspace or object named in the path is not the   operations with path parameters
        caller's, or does not exist
415     a body in a media type the operation does not read     operations with a request body
======  =====================================================  ============================================

A status that depends on the state of the data (409 conflicts, or 404 for a token in the
body) is declared by the view, per method, in ``error_statuses``::

    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"DELETE": (409,)}

A required text field that DRF trims carries ``pattern: \S``: a value of only spaces is blank.

Path parameters that name a workspace (``slug``), a model (``name``) or an alias (``alias``)
carry the pattern such names are made with (:func:`path_patterns`): a name outside it names
nothing (404), and a client can check one before creating it.

A response the view documents itself with ``extend_schema`` (the editor's 409 that carries
the other side's source) is kept as it is.

drf-spectacular gives only POST, PUT and PATCH a request body; here a DELETE has one too when
its view declares it with ``extend_schema(request=...)`` (deleting a workspace takes a
confirmation). A body is marked required when its serializer has a required field, or says
``body_required = True`` (one whose fields are each optional but not all at once).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

from webapp.core.api import ErrorSerializer

ERROR_DESCRIPTIONS = {
    400: "The input does not parse or validate; `detail` says what is wrong, `errors` which field.",
    401: "No valid credentials: the API key is malformed, unknown, revoked or expired, or none was sent.",
    403: "The caller's role or the API key's scopes do not allow this.",
    404: "Not found, or not visible to the caller (another workspace's objects answer the same).",
    409: "Refused in the current state of the data; `detail` says what to change first.",
    413: "The request body is too large.",
    415: "The request body is not in a media type this operation reads.",
}


class PodiumAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the standard error responses (see the module docstring)."""

    body_methods: ClassVar[frozenset[str]] = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def get_request_serializer(self) -> Any:
        if self.method == "DELETE":
            return None  # a DELETE reads a body only when its view declares one (extend_schema(request=...))
        return super().get_request_serializer()

    def _get_request_body(self, direction: str = "request") -> Any:
        if self.method not in self.body_methods:
            return None
        serializer = self.get_request_serializer()
        if self.method != "DELETE" or serializer is None:
            body = super()._get_request_body(direction)
        else:
            # drf-spectacular builds bodies for POST, PUT and PATCH only; build this one the same way.
            self.method = "POST"
            try:
                body = super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        if body is not None and getattr(serializer, "body_required", False):
            body["required"] = True
        return body

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in sorted(self.error_statuses()):
            if str(code) not in responses:
                error = OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
                responses[str(code)] = self._get_response_for_code(error, str(code))
        return responses

    def error_statuses(self) -> set[int]:
        """The error statuses this operation can answer."""
        statuses = {401}
        has_body = self.method in self.body_methods and self.get_request_serializer() is not None
        if has_body or self._query_parameters():
            statuses.add(400)
        perms: dict[str, str] = getattr(self.view, "perms", {})
        if self.method not in SAFE_METHODS or self.method in perms:
            statuses.add(403)
        if "{" in self.path:
            statuses.add(404)
        if has_body:
            statuses.add(415)
        declared: dict[str, tuple[int, ...]] = getattr(self.view, "error_statuses", {})
        statuses.update(declared.get(self.method, ()))
        return statuses

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (direction == "request" and type(field) in (serializers.CharField, serializers.EmailField)
                and field.trim_whitespace and not field.allow_blank
                and not any(isinstance(v, RegexValidator) for v in field.validators)):
            schema["pattern"] = r"\S"  # DRF trims the value, so one of only spaces is blank
        return schema

    def _get_parameters(self) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super()._get_parameters()
        patterns = path_patterns()
        for parameter in parameters:
            if parameter.get("in") == "path" and parameter["name"] in patterns:
                parameter["schema"] = {**parameter["schema"], "pattern": patterns[parameter["name"]]}
        return parameters

    def _query_parameters(self) -> list[dict[str, Any]]:
        return [p for p in self._get_parameters() if p.get("in") == "query"]


@cache
def path_patterns() -> dict[str, str]:
    """URL parameter name -> the pattern of the names it takes, the same in every route of the API."""
    from webapp.serving.actions import ALIAS_RE, NAME_RE
    from webapp.workspaces.actions import SLUG_RE

    return {"slug": SLUG_RE.pattern, "name": NAME_RE.pattern, "alias": ALIAS_RE.pattern}


ANY_JSON: dict[str, Any] = {"description": "Any JSON value the model takes or gives (for scikit-learn and torch "
                            'models, `{"inputs": [[...]]}` and `{"predictions": [...]}`).'}
GATEWAY_ERRORS = {
    400: "The body is not valid JSON, or nests arrays and objects too deeply.",
    401: "No valid API key.",
    403: "The key lacks the `invoke` scope, or its owner's role no longer allows calling models.",
    404: "No such model, version or alias in the key's workspace.",
    410: "The version is stopped, or failed to deploy; it will not answer again.",
    413: "The request body is larger than `PODIUM_MAX_REQUEST_BYTES`.",
    415: "The body is not sent as `Content-Type: application/json`.",
    422: "The model rejected the input (its `predict()` raised a ValueError, TypeError, KeyError or IndexError).",
    500: "The model's `predict()` raised, or returned something that is not JSON.",
    502: "The replica died during the call (a limit it hit is named); `Retry-After` is set.",
    503: "No replica is ready yet; `Retry-After` is set.",
    504: "`predict()` did not answer within `PODIUM_PREDICT_TIMEOUT_S`; the replica is recycled.",
}


def gateway_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A drf-spectacular postprocessing hook: the prediction routes. They are served by the lean gateway in
    front of Django (``serving/gateway.py``), so no view describes them; this does, in the same schema."""
    patterns = path_patterns()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    parameters = {
        "name": {"name": "name", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": patterns["name"]}, "description": "the model"},
        "number": {"name": "number", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1},
                   "description": "one version"},
        "alias": {"name": "alias", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": patterns["alias"]}, "description": "an alias"},
    }
    routes = {
        "/v1/models/{name}/predict": (["name"], "Call a model (its production alias)"),
        "/v1/models/{name}/versions/{number}/predict": (["name", "number"], "Call one version of a model"),
        "/v1/models/{name}/aliases/{alias}/predict": (["name", "alias"], "Call a model through an alias"),
    }
    for path, (names, summary) in routes.items():
        responses: dict[str, Any] = {"200": {
            "description": "The model's answer: JSON, or, when its predict() yields, a stream of chunks (text, "
                           "bytes, or one JSON value per line). Headers: `X-Request-Id`, `X-Podium-Model-Version`.",
            "content": {"application/json": {"schema": ANY_JSON}, "text/plain": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}}},
        }}
        responses.update({str(status): {"description": text, "content": error}
                          for status, text in GATEWAY_ERRORS.items()})
        result.setdefault("paths", {})[path] = {"post": {
            "operationId": "predict_" + "_".join(names), "summary": summary, "tags": ["predict"],
            "parameters": [parameters[n] for n in names], "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ANY_JSON}}},
            "responses": responses,
        }}
    return result
