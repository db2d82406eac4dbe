"""Live output of a test run over a websocket.

``/ws/workspaces/<slug>/models/<name>/test-runs/<id>`` sends every line so far, then
each new one, as ``{"event": "line", "line": {"time", "stream", "text"}}``, status
changes as ``{"event": "status", "status", "result", "error", "failed_step"}``, and
closes after the final status (passed or failed). Members with ``models.read`` only;
anyone else is closed with 4403, the same answer as for a missing run.

No line is lost or sent twice: the socket joins the run's group before reading the
lines kept so far (see :mod:`webapp.ide.runner`), and drops group lines by index.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from webapp.ide import runner
from webapp.ide.models import TestRun
from webapp.workspaces.access import Actor, scoped, workspace_for

CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _run(user: Any, slug: str, name: str, run_id: str) -> TestRun | None:
    try:
        access = workspace_for(Actor(user=user), slug)
        if not access.can("models.read"):
            return None
        return scoped(TestRun.objects.all(), access, model__name=name, pk=run_id)
    except Http404:
        return None


@database_sync_to_async
def _snapshot(run_id: str) -> tuple[TestRun, list[dict[str, Any]]]:
    run = TestRun.objects.get(pk=run_id)
    return run, (run.output if run.done else runner.live_lines(run_id))


class TestRunConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    sent = 0

    async def connect(self) -> None:
        user = self.scope.get("user")
        kwargs = self.scope["url_route"]["kwargs"]
        run = None
        if user is not None and user.is_authenticated:
            run = await _run(user, kwargs["slug"], kwargs["name"], kwargs["run_id"])
        if run is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = runner.group_name(run.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        run, lines = await _snapshot(run.pk)
        for line in lines:
            await self.send_json({"event": "line", "line": line})
        self.sent = len(lines)
        await self.send_json(runner.status_message(run))
        if run.done:
            await self.close()

    async def run_message(self, message: dict[str, Any]) -> None:
        if message["event"] == "line":
            if message["index"] < self.sent:
                return
            self.sent = message["index"] + 1
            await self.send_json({"event": "line", "line": message["line"]})
            return
        await self.send_json({k: v for k, v in message.items() if k != "type"})
        if message["status"] in ("passed", "failed"):
            await self.close()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)


TestRunConsumer.__test__ = False
