"""Records every gateway call without slowing the answer.

The gateway appends a row to an in-process buffer; a background thread writes
the buffer to PostgreSQL in one ``bulk_create`` every ``FLUSH_EVERY`` seconds
(and at exit). A crash loses at most that window of call records, never a
prediction.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)
FLUSH_EVERY = 0.5

_buffer: list[dict[str, Any]] = []
_lock = threading.Lock()
_started = False
_wake = threading.Event()


def record(**row: Any) -> None:
    global _started
    row.setdefault("created_at", timezone.now())
    row.setdefault("alias", "")
    row.setdefault("error", "")
    with _lock:
        _buffer.append(row)
        if not _started:
            _started = True
            threading.Thread(target=_run, name="invocation-recorder", daemon=True).start()


COLUMNS = ("workspace_id", "model_id", "version_id", "alias", "api_key_id", "request_id", "status_code",
           "latency_ms", "request_bytes", "response_bytes", "error", "created_at")


def flush() -> int:
    """Write what is buffered now; returns the number of rows written.

    Uses PostgreSQL's COPY rather than ``bulk_create``: building model instances for
    thousands of rows a second holds the GIL long enough to show in the gateway's p99.
    """
    with _lock:
        rows = _buffer[:]
        _buffer.clear()
    if not rows:
        return 0
    try:
        try:
            _copy(rows)
        except IntegrityError:
            # A model, version or key was deleted while its calls waited here: keep the calls of what
            # still exists (a deleted version's or key's calls lose only that link, as on delete).
            rows = _still_linked(rows)
            _copy(rows)
    except Exception:  # noqa: BLE001 - losing records must never take the gateway down
        log.exception("could not record %d calls", len(rows))
        close_old_connections()
        return 0
    return len(rows)


def _copy(rows: list[dict[str, Any]]) -> None:
    with transaction.atomic(), connection.cursor() as cursor, cursor.copy(
        f"COPY serving_invocation ({', '.join(COLUMNS)}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row([row.get(column) for column in COLUMNS])


def _still_linked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from webapp.serving.models import Model, ModelVersion
    from webapp.workspaces.models import ApiKey

    def existing(model: Any, column: str) -> set[int]:
        wanted = {row[column] for row in rows if row.get(column) is not None}
        return set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))

    models, versions, keys = existing(Model, "model_id"), existing(ModelVersion, "version_id"), existing(
        ApiKey, "api_key_id")
    kept = []
    for row in rows:
        if row.get("model_id") not in models:
            continue  # the model and its calls were deleted
        kept.append({**row, "version_id": row.get("version_id") if row.get("version_id") in versions else None,
                     "api_key_id": row.get("api_key_id") if row.get("api_key_id") in keys else None})
    return kept


def _run() -> None:
    while True:
        _wake.wait(FLUSH_EVERY)
        _wake.clear()
        flush()


atexit.register(flush)
