"""Build and runtime logs of a version stream over a websocket."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from tests.conftest import bearer, key_for
from tests.serving.conftest import custom_bundle
from tests.serving.test_deploy import ECHO, upload
from tests.test_events_websocket import ORIGIN, session_cookie
from webapp.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_runtime_and_build_logs_stream_to_members_only(alice, acme, charlie, serving):
    deployer = bearer(key_for(alice, acme, ["deploy", "read"]))
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201

    async def read(cookie: bytes, source: str) -> tuple[bool, list[str], int | None]:
        communicator = WebsocketCommunicator(
            application, f"/ws/workspaces/acme/models/greeter/versions/1/logs?source={source}",
            headers=[ORIGIN, (b"cookie", cookie)],
        )
        connected, code = await communicator.connect(timeout=5)
        texts: list[str] = []
        if connected:
            while not any("ready" in t or "environment ready" in t for t in texts):
                message = await communicator.receive_json_from(timeout=10)
                if message["event"] == "end":
                    break
                texts.append(message["line"]["text"])
            await communicator.disconnect()
        return connected, texts, code

    connected, runtime, _ = asyncio.run(read(asyncio.run(session_cookie(alice.user)), "runtime"))
    assert connected and any("model loaded" in t for t in runtime)
    connected, build, _ = asyncio.run(read(asyncio.run(session_cookie(alice.user)), "build"))
    assert connected and any("environment ready" in t for t in build)
    connected, _, code = asyncio.run(read(asyncio.run(session_cookie(charlie.user)), "runtime"))
    assert not connected and code == 4403
