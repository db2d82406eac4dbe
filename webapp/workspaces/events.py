"""Live workspace events pushed to open pages over the events websocket.

Actions call :func:`publish` inside their transaction; the message is sent to
the workspace's channel group only after the transaction commits, so no page
ever hears about a change that was rolled back. Losing an event (Redis down)
never fails the action: the page still shows the truth on its next load.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def group_name(workspace_id: int) -> str:
    return f"workspace.{workspace_id}"


def publish(workspace_id: int, event: str, data: dict[str, Any] | None = None) -> None:
    message = {"type": "workspace.event", "event": event, "data": data or {}}

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group_name(workspace_id), message)
        except Exception:  # noqa: BLE001 - a lost live update must never fail the write
            log.warning("could not publish %s for workspace %s", event, workspace_id, exc_info=True)

    transaction.on_commit(send)
