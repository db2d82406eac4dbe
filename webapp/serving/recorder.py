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

from django.db import close_old_connections

log = logging.getLogger(__name__)
FLUSH_EVERY = 0.5

_buffer: list[dict[str, Any]] = []
_lock = threading.Lock()
_started = False
_wake = threading.Event()


def record(**row: Any) -> None:
    global _started
    with _lock:
        _buffer.append(row)
        if not _started:
            _started = True
            threading.Thread(target=_run, name="invocation-recorder", daemon=True).start()


def flush() -> int:
    """Write what is buffered now; returns the number of rows written."""
    from webapp.serving.models import Invocation

    with _lock:
        rows = _buffer[:]
        _buffer.clear()
    if not rows:
        return 0
    try:
        Invocation.objects.bulk_create([Invocation(**row) for row in rows])
    except Exception:  # noqa: BLE001 - losing records must never take the gateway down
        log.exception("could not record %d calls", len(rows))
        close_old_connections()
        return 0
    return len(rows)


def _run() -> None:
    while True:
        _wake.wait(FLUSH_EVERY)
        _wake.clear()
        flush()


atexit.register(flush)
