"""Health check and the error pages (JSON under /api/, HTML elsewhere)."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


def _check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down", reported by name
        return False, f"{type(exc).__name__}: {exc}".strip()[:300]


def _check_redis() -> tuple[bool, str]:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        return True, "ok"
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"[:300]


def _check_executor() -> tuple[bool, str]:
    try:
        from sandbox import get_executor
    except ImportError:
        return False, "the sandbox package is not installed"
    try:
        return get_executor().health()
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"[:300]


CHECKS = {"database": _check_database, "redis": _check_redis, "executor": _check_executor}
# Parts whose failure leaves predictions answering: the gateway keeps the replicas' last known addresses
# while the executor cannot be reached, so only deploys, test runs and repairs wait for it.
DEGRADES_ONLY = frozenset({"executor"})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``ok`` when every part is up; 200 ``degraded`` naming the parts in ``degraded`` when only the
    executor is down (serving goes on; starting sandboxes waits); 503 ``down`` naming the parts in ``down``
    when the database or Redis is."""
    started = time.monotonic()
    parts: dict[str, Any] = {}
    for name, check in CHECKS.items():
        ok, detail = check()
        parts[name] = {"ok": ok, "detail": detail}
    failing = [name for name, part in parts.items() if not part["ok"]]
    down = [name for name in failing if name not in DEGRADES_ONLY]
    degraded = [name for name in failing if name in DEGRADES_ONLY]
    body = {
        "status": "down" if down else "degraded" if degraded else "ok",
        "down": down,
        "degraded": degraded,
        "parts": parts,
        "executor": settings.PODIUM_EXECUTOR,
        "took_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if failing:
        log.warning("health check failing: %s", ", ".join(failing))
    return JsonResponse(body, status=200 if not down else 503)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/v1/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return render(request, "errors/404.html", status=404)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "You do not have permission to do this.", "code": "permission_denied"},
                            status=403)
    return render(request, "errors/403.html", status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Podium hit an internal error; it has been logged.", "code": "server_error"},
                            status=500)
    return render(request, "errors/500.html", status=500)
