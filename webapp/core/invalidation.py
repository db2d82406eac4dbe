"""Cross-process cache invalidation over one Redis channel.

Web processes keep small in-memory caches on the prediction path (API keys,
model routes). A write that makes one of them wrong calls :func:`announce`
inside its transaction; after commit the message goes to every process, whose
listener (:func:`listen_forever`, one per event loop) calls the handlers
registered for that topic. Handlers also run at once in the announcing
process. If Redis is unreachable the caches' own TTLs bound staleness.

Messages are ``<topic>`` or ``<topic>:<argument>`` (``keys``, ``route:12:churn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)
CHANNEL = "podium:invalidate"

Handler = Callable[[str], None]
_handlers: dict[str, list[Handler]] = {}
_listening: set[int] = set()


def register(topic: str, handler: Handler) -> None:
    """Call ``handler(argument)`` whenever ``topic`` is announced (an empty argument means everything)."""
    _handlers.setdefault(topic, []).append(handler)


def dispatch(message: str) -> None:
    topic, _, argument = message.partition(":")
    for handler in _handlers.get(topic, []):
        handler(argument)


def dispatch_all() -> None:
    """Forget everything (used after losing the channel, when messages may have been missed)."""
    for handlers in _handlers.values():
        for handler in handlers:
            handler("")


def announce(message: str) -> None:
    """After the current transaction commits, invalidate ``message`` here and in every other process."""

    def send() -> None:
        dispatch(message)
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).publish(CHANNEL, message.encode())
        except redis.RedisError:
            log.warning("could not announce %r; other processes notice when their cache entry expires", message)

    transaction.on_commit(send)


def listening() -> bool:
    try:
        return id(asyncio.get_running_loop()) in _listening
    except RuntimeError:
        return False


async def listen_forever() -> None:
    """Apply every announcement from any process (run once per event loop)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id in _listening:
        return
    _listening.add(loop_id)
    delay = 0.5
    try:
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                dispatch_all()  # anything may have changed while we were not listening
                delay = 0.5
                while True:
                    # redis-py's pubsub may swallow a cancellation that lands inside its read; the task
                    # still counts it (Task.cancelling), so honour it here instead of listening forever.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise asyncio.CancelledError
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        dispatch(message["data"].decode())
            except (redis.RedisError, OSError):
                log.warning("cache invalidation lost Redis; retrying in %.1fs", delay)
                dispatch_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                # Bounded: closing must never hold up the event loop's shutdown.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(pubsub.aclose(), 1)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(client.aclose(), 1)
    finally:
        _listening.discard(loop_id)
