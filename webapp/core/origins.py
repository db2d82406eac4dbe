"""Which pages may open Podium's websockets: the same-origin rule, with the port.

A browser sends a websocket handshake to any origin with the member's cookies, so
the handshake's ``Origin`` is the only thing that tells Podium's own pages from a
page on another site, or on another port of the same host (cookies ignore ports:
anything served on ``http://127.0.0.1:9999`` gets the session of
``http://127.0.0.1:8000``). An origin is accepted when its scheme, host AND port
are those of ``PODIUM_CSRF_TRUSTED_ORIGINS`` (``PODIUM_URL`` by default), or those
of the request itself (its ``Host`` header, which must be one of ``ALLOWED_HOSTS``,
and its scheme: ``ws`` for an ``http`` page, ``wss`` for ``https``), as Django's
CSRF check does for forms. Channels' ``AllowedHostsOriginValidator`` compares the
host only, which is why this exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` -> (scheme, host, port), the port filled in; None when it is not one."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _request_origin(scope: dict[str, Any]) -> Origin | None:
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return parse_origin(f"{scheme}://{host}")


def allowed(scope: dict[str, Any], origin_header: str) -> bool:
    origin = parse_origin(origin_header)
    if origin is None:
        return False
    trusted = {parse_origin(o) for o in settings.CSRF_TRUSTED_ORIGINS} | {_request_origin(scope)}
    return origin in trusted


class SameOriginValidator:
    """ASGI middleware: refuse a websocket whose ``Origin`` is not one of Podium's own (see above)."""

    def __init__(self, application: Callable[..., Awaitable[None]]) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            origin = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"origin"), "")
            if not allowed(scope, origin):
                denier = WebsocketDenier()
                return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
