"""The per-workspace events websocket, through the real ASGI stack and Redis channel layer."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from tests.conftest import make_user
from webapp.asgi import application
from webapp.workspaces import actions
from webapp.workspaces.access import Actor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def connect(path: str, cookie: bytes | None = None, origin: tuple[bytes, bytes] = ORIGIN):
    headers = [origin]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_a_member_hears_a_new_member_join(alice, acme):
    communicator, connected, _ = await connect("/ws/workspaces/acme/events", await session_cookie(alice.user))
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello == {"event": "hello", "data": {"workspace": "acme", "role": "owner"}}

    @sync_to_async
    def invite_and_join() -> None:
        _, token = actions.create_invitation(alice.actor, alice.access(acme), "developer")
        actions.accept_invitation(Actor(user=make_user("dave")), token)

    await invite_and_join()
    events = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert events[0]["event"] == "invitation.created"
    assert events[1] == {"event": "member.added", "data": {"user": "dave", "role": "developer"}}
    await communicator.disconnect()


async def test_it_answers_ping(alice, acme):
    communicator, connected, _ = await connect("/ws/workspaces/acme/events", await session_cookie(alice.user))
    assert connected
    await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(timeout=5))["event"] == "pong"
    await communicator.disconnect()


async def test_an_idle_socket_stays_open(alice, acme):
    # The channel layer waits for messages 5 s at a time: an idle socket must outlive that wait (it used to
    # die with the Redis read timing out, and the page flipped between Live and Offline every 5 s).
    import asyncio

    communicator, connected, _ = await connect("/ws/workspaces/acme/events", await session_cookie(alice.user))
    assert connected
    await communicator.receive_json_from(timeout=5)
    await asyncio.sleep(6.5)
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(timeout=5))["event"] == "pong"
    await communicator.disconnect()


async def test_an_outsider_is_refused_like_a_missing_workspace(acme, charlie):
    cookie = await session_cookie(charlie.user)
    _, connected, code = await connect("/ws/workspaces/acme/events", cookie)
    _, connected_missing, code_missing = await connect("/ws/workspaces/no-such-ws/events", cookie)
    assert not connected and not connected_missing
    assert code == code_missing == 4403


async def test_anonymous_is_refused(acme):
    _, connected, code = await connect("/ws/workspaces/acme/events")
    assert not connected and code == 4401


async def test_a_foreign_origin_is_refused(alice, acme):
    cookie = await session_cookie(alice.user)
    _, connected, _ = await connect("/ws/workspaces/acme/events", cookie, origin=(b"origin", b"https://evil.example"))
    assert not connected


@pytest.mark.parametrize("origin", [
    "http://127.0.0.1:9999",  # another local port: same host, so the browser sends the session cookie
    "http://127.0.0.1",  # port 80
    "https://127.0.0.1:8000",  # same host and port, other scheme
    "http://localhost:8000",  # another name of this host, not Podium's URL
    "null",
    "http://127.0.0.1:notaport",
])
async def test_an_origin_on_another_scheme_host_or_port_is_refused(alice, acme, origin):
    cookie = await session_cookie(alice.user)
    _, connected, _ = await connect("/ws/workspaces/acme/events", cookie, origin=(b"origin", origin.encode()))
    assert not connected


async def test_the_page_of_the_same_origin_as_the_request_is_accepted(alice, acme):
    cookie = await session_cookie(alice.user)
    communicator = WebsocketCommunicator(application, "/ws/workspaces/acme/events", headers=[
        (b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"), (b"cookie", cookie)])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.disconnect()
    other_port = WebsocketCommunicator(application, "/ws/workspaces/acme/events", headers=[
        (b"origin", b"http://localhost:9999"), (b"host", b"localhost:8000"), (b"cookie", cookie)])
    connected, _ = await other_port.connect(timeout=5)
    assert not connected


async def test_removed_members_stop_hearing(alice, acme, member_of):
    @sync_to_async
    def add_viewer():
        return member_of("vic", "viewer")

    vic = await add_viewer()
    communicator, connected, _ = await connect("/ws/workspaces/acme/events", await session_cookie(vic.user))
    assert connected
    await communicator.receive_json_from(timeout=5)

    @sync_to_async
    def remove_vic() -> None:
        from webapp.workspaces.models import Membership

        actions.remove_member(alice.actor, alice.access(acme), Membership.objects.get(user=vic.user))

    await remove_vic()
    event = await communicator.receive_json_from(timeout=5)
    assert event == {"event": "member.removed", "data": {"user": "vic"}}
    await communicator.disconnect()
    _, connected_again, code = await connect("/ws/workspaces/acme/events", await session_cookie(vic.user))
    assert not connected_again and code == 4403
