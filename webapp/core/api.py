"""Shared pieces of the REST API: the JSON error shape, the exception handler, the type check of
JSON bodies, whole numbers in query strings and pagination.

Every error is ``{"detail": "<message for a person>", "code": "<machine code>"}``
plus ``"errors": {field: [messages]}`` for validation failures. Nothing the API
raises becomes a 500 with an HTML page. ``core.openapi`` documents this shape
(``ErrorSerializer``) on every status each operation can answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from webapp.workspaces.actions import ActionError

INT_MAX = 2**31 - 1  # PostgreSQL's integer: the largest version or revision number a request may name

WHOLE_NUMBER = re.compile(r"-?[0-9]{1,4000}")  # int() refuses longer

NOT_FOUND = {"detail": "Not found.", "code": "not_found"}

_CODES = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found", 409: "conflict"}


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of every error the API answers: detail for a person, code for a program."""

    class Meta:
        ref_name = "Error"

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Declared here: a field named "errors" would hide Serializer.errors.
        return {
            "detail": serializers.CharField(help_text="What is wrong, for a person."),
            "code": serializers.CharField(help_text="What is wrong, for a program: invalid, not_found, conflict..."),
            "errors": serializers.DictField(
                child=serializers.JSONField(), required=False,
                help_text="Validation failures only: the messages for each field of the input.",
            ),
        }


_WANTED = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}

NUL_REFUSED = "Text may not contain NUL (\\u0000) characters."


def holds_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (a JSON value) holds a NUL, which PostgreSQL cannot store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def json_body_errors(serializer: serializers.Serializer[Any], data: Any) -> dict[str, Any]:
    """The fields of a JSON body whose JSON type is not the one the schema gives them, or whose text holds a
    NUL, each with a message.

    DRF coerces: ``"5"`` and ``5.0`` pass an IntegerField, ``0`` and ``"yes"`` a BooleanField, ``5`` a
    CharField. A JSON body says what it means, so a value of another type is a client's mistake to report,
    not to reinterpret. Missing fields, nulls and non-object bodies are left to the serializer.
    """
    if not isinstance(data, dict):
        return {}
    errors: dict[str, Any] = {}
    for name, field in serializer.fields.items():
        if not field.read_only and data.get(name) is not None:
            error = _json_type_error(field, data[name])
            if error:
                errors[name] = error
    return errors


def _json_type_error(field: serializers.Field[Any, Any, Any, Any], value: Any) -> Any:
    if isinstance(field, serializers.ListSerializer | serializers.ListField) and isinstance(value, list):
        child: Any = field.child
        items = {str(i): e for i, item in enumerate(value) if item is not None and (e := _json_type_error(child, item))}
        return items or None
    if isinstance(field, serializers.DictField) and isinstance(value, dict):
        values = {k: e for k, v in value.items() if v is not None and (e := _json_type_error(field.child, v))}
        return values or None
    if isinstance(field, serializers.Serializer):
        return json_body_errors(field, value) or None
    wanted = _json_type_of(field)
    if wanted is None or (isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)):
        return [NUL_REFUSED] if holds_nul(value) else None
    given = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else json.dumps(value)[:40]
    return [f"Must be {_WANTED[wanted[0]]}, not {given}."]


def _json_type_of(field: Any) -> tuple[type, ...] | None:
    if isinstance(field, serializers.BooleanField):
        return (bool,)
    if isinstance(field, serializers.IntegerField):
        return (int,)
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return (float, int)
    if isinstance(field, serializers.ChoiceField):
        return (str,) if all(isinstance(choice, str) for choice in field.choices) else None
    if isinstance(field, serializers.CharField | serializers.DateTimeField | serializers.DateField):
        return (str,)
    return None  # JSONField and the like take any JSON value


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            msg = _first_message(value)
            return msg if field in ("non_field_errors", "detail") else f"{field}: {msg}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ActionError):
        body: dict[str, Any] = {"detail": exc.message, "code": _CODES.get(exc.status, "invalid")}
        if exc.field:
            body["errors"] = {exc.field: [exc.message]}
        return Response(body, status=exc.status)
    if isinstance(exc, Http404):
        return Response(NOT_FOUND, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(
            {"detail": _first_message(exc.detail), "code": "invalid", "errors": errors},
            status=status.HTTP_400_BAD_REQUEST,
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "detail": str(exc.detail) if not isinstance(exc.detail, (dict, list)) else _first_message(exc.detail),
            "code": codes if isinstance(codes, str) else _CODES.get(response.status_code, "error"),
        }
    return response


def whole_number(params: Any, name: str, default: int, minimum: int | None = None,
                 maximum: int | None = None) -> int:
    """Query parameter ``name`` as an integer within the bounds given; a 400 naming it otherwise."""
    raw = params.get(name)
    if raw is None:
        return default
    # Python's int() also takes " 5", "+5" and "5_0"; the schema's integer does not.
    value = int(raw) if WHOLE_NUMBER.fullmatch(raw) else None
    if value is None or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" of at least {minimum}"
        high = "" if maximum is None else f"{' and' if low else ' of'} at most {maximum}"
        raise ActionError(f"'{name}' must be a whole number{low}{high}.", field=name)
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's ``?limit=&offset=`` pagination, except that a value that is not a whole number (or a limit
    under 1, a negative offset) is refused with a 400 instead of being silently replaced by the default."""

    largest = 10**15  # far past any table, and limit + offset stay inside PostgreSQL's bigint

    def get_limit(self, request: Request) -> int | None:
        limit = whole_number(request.query_params, self.limit_query_param, self.default_limit or 0, 1, self.largest)
        return min(limit, self.max_limit) if self.max_limit else limit

    def get_offset(self, request: Request) -> int:
        return whole_number(request.query_params, self.offset_query_param, 0, 0, self.largest)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"].update(minimum=minimum, maximum=self.largest)
        return parameters
