"""API key lookups for the invocation gateway, cached in the process.

A prediction must not pay for three database queries to check its key, so the
gateway keeps what a key may do in memory. Revocation still takes effect at
once: every action that narrows a key (revoking it, changing or removing its
creator's membership, deleting the workspace) announces ``keys`` through
:mod:`webapp.core.invalidation` after it commits, and every web process
empties its cache when it hears that. ``TTL`` bounds staleness if a message is ever lost
(Redis restarting); expiry is checked on every use.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from django.utils import timezone

from webapp.core import invalidation
from webapp.lib import keys
from webapp.workspaces.access import Access
from webapp.workspaces.auth import ApiKeyError, resolve_key
from webapp.workspaces.models import Membership

TTL = 5.0


@dataclass(frozen=True)
class Principal:
    api_key_id: int
    workspace_id: int
    perms: frozenset[str]
    expires_at: dt.datetime | None
    cannot_invoke: str = ""  # why the key cannot call models (its role, or its scopes), when it cannot


_cache: dict[str, tuple[float, Principal]] = {}
_lock = threading.Lock()


def peek(token: str) -> Principal | None:
    """The cached answer for a usable key, without touching the database; None on a miss."""
    if not keys.is_well_formed(token):
        return None
    with _lock:
        hit = _cache.get(keys.digest(token))
    if hit is None or hit[0] < time.monotonic():
        return None
    principal = hit[1]
    if principal.expires_at is not None and principal.expires_at <= timezone.now():
        return None
    return principal


def lookup(token: str) -> Principal:
    """What the key may do. Raises ApiKeyError (401) saying what is wrong with it."""
    if not keys.is_well_formed(token):
        resolve_key(token)  # raises the "malformed" error with its message
    digest = keys.digest(token)
    with _lock:
        hit = _cache.get(digest)
    now = time.monotonic()
    if hit is None or hit[0] < now:
        principal = _load(token)
        with _lock:
            _cache[digest] = (now + TTL, principal)
    else:
        principal = hit[1]
    if principal.expires_at is not None and principal.expires_at <= timezone.now():
        invalidate()
        resolve_key(token)  # raises the "expired" error with its message
    return principal


def _load(token: str) -> Principal:
    api_key = resolve_key(token)
    membership = Membership.objects.filter(workspace_id=api_key.workspace_id, user_id=api_key.created_by_id).first()
    if membership is None:
        raise ApiKeyError("This API key's owner is no longer a member of its workspace.", code="orphaned_key")
    access = Access.build(api_key.workspace, membership, api_key)
    refusal = "" if access.can("models.invoke") else access.why_not("models.invoke")
    return Principal(api_key.pk, api_key.workspace_id, access.perms, api_key.expires_at, refusal)


def invalidate() -> None:
    with _lock:
        _cache.clear()


def announce() -> None:
    """Tell every process to forget cached keys, once the current transaction commits."""
    invalidation.announce("keys")


invalidation.register("keys", lambda _argument: invalidate())
