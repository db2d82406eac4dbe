"""A small keep-alive HTTP/1.1 client for the gateway's calls to model servers.

Written by hand rather than using httpx because its only peer is Podium's own
model server (``sandbox/runtime/model_server.py``), which answers with a
``Content-Length`` body (or, when a model streams, chunks), and the gateway's latency budget is about a
millisecond: httpx's generality (redirects, cookies, auth flows, chunked
bodies, its own pool) costs close to half of that per call. This client keeps
a pool of open connections per replica address (``unix:/path`` or
``http://host:port``) and speaks exactly the subset the model server speaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

MAX_IDLE = 64
log = logging.getLogger("podium.gateway")


class UpstreamError(Exception):
    """The replica could not be reached or dropped the connection. The message goes into the call's
    record, which the tenant sees: it never names the replica's address (a host path); the log does."""


class UpstreamUnreachable(UpstreamError):
    """The call never reached the replica: its socket refused, reset or did not accept the connection
    (accept queue full, or the replica just died). Nothing was sent, so the call may go to another replica."""


def _why(exc: BaseException) -> str:
    """An error in words, without the file names an OSError may carry."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection closed before the answer was complete"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


class UpstreamStream:
    """A streamed answer (the model's predict() yields chunks): iterate it for the chunks as they come; the
    connection goes back to the pool once the last one was read, and is closed if the stream breaks off."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, content_type: str,
                 timeout: float, done: Callable[[bool], None]) -> None:
        self.reader, self.writer = reader, writer
        self.content_type = content_type
        self.timeout = timeout
        self.size = 0
        self._done = done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        complete = False
        try:
            while True:
                line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), self.timeout)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    await self.reader.readuntil(b"\r\n")
                    complete = True
                    return
                data = await asyncio.wait_for(self.reader.readexactly(length + 2), self.timeout)
                self.size += length
                yield data[:-2]
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._done(complete)


@dataclass
class _Pool:
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


class Upstream:
    def __init__(self, connect_timeout: float = 2.0) -> None:
        self.connect_timeout = connect_timeout
        self.pools: dict[tuple[int, str], _Pool] = {}

    def _pool(self, address: str) -> _Pool:
        key = (id(asyncio.get_running_loop()), address)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = _Pool()
        return pool

    async def _connect(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if address.startswith("unix:"):
                opening = asyncio.open_unix_connection(address[len("unix:"):])
            else:
                host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
                opening = asyncio.open_connection(host, int(port))
            return await asyncio.wait_for(opening, self.connect_timeout)
        except (TimeoutError, OSError) as exc:
            log.warning("cannot connect to %s: %r", address, exc)
            raise UpstreamUnreachable(f"a replica refused the connection ({_why(exc)})") from None

    async def post(self, address: str, path: str, body: bytes, timeout: float) -> tuple[int, bytes | UpstreamStream]:
        """POST a JSON body; returns (status, body), the body an ``UpstreamStream`` when the model streams.
        Raises UpstreamUnreachable when nothing was sent, UpstreamError when the replica dropped the call after
        it was sent, or TimeoutError."""
        pool = self._pool(address)
        reused = bool(pool.idle)
        reader, writer = pool.idle.pop() if reused else await self._connect(address)
        request = (
            f"POST {path} HTTP/1.1\r\nHost: model\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            writer.write(request)
            status, answer, keep, not_run = await asyncio.wait_for(self._read_response(reader), timeout)
            if isinstance(answer, str):  # chunked: a stream of the model's chunks, read as the caller sends them
                def done(complete: bool) -> None:
                    if complete and keep and len(pool.idle) < MAX_IDLE:
                        pool.idle.append((reader, writer))
                    else:
                        writer.close()

                return status, UpstreamStream(reader, writer, answer, timeout, done)
        except TimeoutError:
            writer.close()
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            if reused:
                # An idle connection the server closed meanwhile: retry once on a fresh one.
                return await self.post(address, path, body, timeout)
            log.warning("%s dropped the call: %r", address, exc)
            raise UpstreamError(f"the replica dropped the call ({_why(exc)})") from None
        if not_run:  # the replica is being recycled and never ran the call: it may go elsewhere
            writer.close()
            raise UpstreamUnreachable("a replica that is being restarted (a predict() call did not return in time) "
                                      "turned the call away without running it")
        if keep and len(pool.idle) < MAX_IDLE:
            pool.idle.append((reader, writer))
        else:
            writer.close()
        return status, answer

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes | str, bool, bool]:
        """(status, body, keep-alive, not run): the last is the model server's ``X-Podium-Not-Run``. For a
        chunked answer the body is its content type, and the chunks are left to read."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        keep, not_run, chunked, content_type = True, False, False, "application/json"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
            elif name == "x-podium-not-run":
                not_run = True
            elif name == "transfer-encoding" and value.strip().lower() == "chunked":
                chunked = True
            elif name == "content-type":
                content_type = value.strip()
        if chunked:
            return status, content_type, keep, not_run
        return status, await reader.readexactly(length), keep, not_run

    def forget(self, address: str) -> None:
        """Drop idle connections to a replica that failed (it is being restarted)."""
        pool = self.pools.pop((id(asyncio.get_running_loop()), address), None)
        for _, writer in pool.idle if pool else []:
            writer.close()
