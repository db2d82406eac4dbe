"""Live logs of a model version over a websocket.

``/ws/workspaces/<slug>/models/<name>/versions/<n>/logs?source=build|runtime``
sends the last lines, then each new line as it is written, as JSON
``{"time", "stream", "replica", "text"}``. Members with ``models.read`` only;
anyone else is closed with 4403 (the same answer as for a missing model).

Build logs are tailed from the version's build.log; runtime logs follow the
executor's log stream. Both are blocking reads, so they run in a thread and
hand lines to the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from sandbox import SandboxError, SandboxHandle, get_executor
from webapp.serving.deploy import build_log_path
from webapp.serving.models import ModelVersion
from webapp.workspaces.access import Actor, scoped, workspace_for

CLOSE_FORBIDDEN = 4403
TAIL = 200


@database_sync_to_async
def _version(user: Any, slug: str, name: str, number: int) -> ModelVersion | None:
    try:
        access = workspace_for(Actor(user=user), slug)
    except Http404:
        return None
    if not access.can("models.read"):
        return None
    try:
        return scoped(ModelVersion.objects.select_related("model"), access, model__name=name, number=number)
    except Http404:
        return None


def follow_build_log(version: ModelVersion, stop: threading.Event) -> Iterator[dict[str, Any]]:
    path = build_log_path(version)
    position = 0
    lines_sent = 0
    while not stop.is_set():
        if path.exists():
            with open(path, errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            lines = chunk.splitlines()
            if lines_sent == 0:
                lines = lines[-TAIL:]
            for raw in lines:
                when, _, text = raw.partition(" ")
                lines_sent += 1
                yield {"time": when, "stream": "build", "replica": 0, "text": text}
        time.sleep(0.2)


def follow_runtime(version: ModelVersion, stop: threading.Event) -> Iterator[dict[str, Any]]:
    if not version.sandbox:
        return
    try:
        for line in get_executor().logs(SandboxHandle.model_validate(version.sandbox), follow=True, tail=TAIL):
            if stop.is_set():
                return
            yield line.model_dump(mode="json")
    except SandboxError as exc:
        yield {"time": None, "stream": "system", "replica": 0, "text": f"logs unavailable: {exc}"}


class VersionLogsConsumer(AsyncJsonWebsocketConsumer):
    stop: threading.Event | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        kwargs = self.scope["url_route"]["kwargs"]
        version = None
        if user is not None and user.is_authenticated:
            version = await _version(user, kwargs["slug"], kwargs["name"], int(kwargs["number"]))
        if version is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode())
        source = (query.get("source") or ["runtime"])[0]
        follow = follow_build_log if source == "build" else follow_runtime
        self.stop = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def pump() -> None:
            assert self.stop is not None
            try:
                for line in follow(version, self.stop):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:
                pass  # the socket's event loop is gone: the client left

        threading.Thread(target=pump, name="log-follow", daemon=True).start()
        self.sender = asyncio.create_task(self._send_lines(queue))

    async def _send_lines(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while True:
            line = await queue.get()
            if line is None:
                await self.send_json({"event": "end"})
                return
            await self.send_json({"event": "line", "line": line})

    async def disconnect(self, code: int) -> None:
        if self.stop is not None:
            self.stop.set()
        sender = getattr(self, "sender", None)
        if sender is not None:
            sender.cancel()
