"""API key authentication for the REST API (``Authorization: Bearer pod_...``).

Each failure answers 401 with a message naming what is wrong with the key
(malformed, unknown, revoked, expired); none of them reveals anything about
other objects. ``last_used_at`` is written at most once a minute per key so
that a busy key does not turn every call into a write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from webapp.lib import keys
from webapp.workspaces.models import ApiKey, Membership

LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


class ApiKeyError(exceptions.AuthenticationFailed):
    pass


def resolve_key(raw: str) -> ApiKey:
    """Return the active key for ``raw`` or raise :class:`ApiKeyError` saying why not."""
    if not keys.is_well_formed(raw):
        raise ApiKeyError(
            "Malformed API key: Podium keys start with 'pod_' and are "
            f"{keys.KEY_LEN} characters long. Copy the whole key, or create a new one.",
            code="malformed_key",
        )
    api_key = ApiKey.objects.select_related("workspace", "created_by").filter(key_hash=keys.digest(raw)).first()
    if api_key is None:
        raise ApiKeyError("Unknown API key: no workspace has this key.", code="unknown_key")
    now = timezone.now()
    if api_key.revoked_at is not None:
        raise ApiKeyError(
            f"This API key was revoked on {api_key.revoked_at:%Y-%m-%d %H:%M} UTC. Create a new key.",
            code="revoked_key",
        )
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise ApiKeyError(
            f"This API key expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC. Create a new key.",
            code="expired_key",
        )
    if not api_key.created_by.is_active or not Membership.objects.filter(
        workspace_id=api_key.workspace_id, user_id=api_key.created_by_id
    ).exists():
        raise ApiKeyError(
            "This API key's owner is no longer a member of its workspace. Create a new key.",
            code="orphaned_key",
        )
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def bearer_token(header: str) -> str | None:
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise ApiKeyError(
                "Send the key as 'Authorization: Bearer pod_...'.", code="bad_authorization_header"
            )
        api_key = resolve_key(token)
        request._request.api_key = api_key  # type: ignore[attr-defined]
        return api_key.created_by, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="podium"'
