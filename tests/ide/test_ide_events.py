"""Workspace events the editor publishes, heard through the real events websocket."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from tests.conftest import client_for
from webapp.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

BASE = "/api/v1/workspaces/acme/models"


@sync_to_async
def cookie_of(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@sync_to_async
def call(person, method: str, url: str, body: dict | None = None):
    return getattr(client_for(person), method)(url, body or {}, format="json")


async def test_editors_and_saves_are_announced(alice, acme, member_of):
    bob = await sync_to_async(member_of)("bob", "developer")
    assert (await call(alice, "post", BASE, {"name": "churn", "template": "custom"})).status_code == 201
    communicator = WebsocketCommunicator(application, "/ws/workspaces/acme/events",
                                         headers=[(b"origin", b"http://127.0.0.1:8000"),
                                                  (b"cookie", await cookie_of(alice.user))])
    assert (await communicator.connect(timeout=5))[0]
    assert (await communicator.receive_json_from(timeout=5))["event"] == "hello"

    await call(bob, "post", f"{BASE}/churn/editing")
    event = await communicator.receive_json_from(timeout=5)
    assert event["event"] == "model.editing"
    assert event["data"]["model"] == "churn" and [e["username"] for e in event["data"]["editors"]] == ["bob"]
    await call(bob, "post", f"{BASE}/churn/editing")  # the same set: nothing new is announced
    await call(alice, "post", f"{BASE}/churn/editing")
    event = await communicator.receive_json_from(timeout=5)
    assert [e["username"] for e in event["data"]["editors"]] == ["alice", "bob"]

    source = (await call(bob, "get", f"{BASE}/churn/source")).json()
    await call(bob, "put", f"{BASE}/churn/source", {"files": source["files"], "base_revision": 1})
    event = await communicator.receive_json_from(timeout=5)
    assert event == {"event": "model.source", "data": {"model": "churn", "revision": 2, "saved_by": "bob"}}
    await communicator.disconnect()
