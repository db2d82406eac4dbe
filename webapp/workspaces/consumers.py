"""Per-workspace live events over a websocket.

A member's open pages subscribe to ``/ws/workspaces/{slug}/events``; actions
publish to the workspace's group (see :mod:`webapp.workspaces.events`). The
socket closes with code 4403 for anyone who is not a member (the same answer
whether or not the workspace exists), and with 4401 for anonymous users.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from webapp.workspaces.access import Access, Actor, workspace_for
from webapp.workspaces.events import group_name

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _access(user: Any, slug: str) -> Access | None:
    try:
        return workspace_for(Actor(user=user), slug)
    except Http404:
        return None


class WorkspaceEventsConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        access = await _access(user, self.scope["url_route"]["kwargs"]["slug"])
        if access is None or not access.can("workspace.read"):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = group_name(access.workspace.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "hello", "data": {"workspace": access.workspace.slug, "role": access.role}})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong", "data": {}})

    async def workspace_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"event": message["event"], "data": message["data"]})
