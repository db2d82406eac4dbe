"""The supervisor's wire protocol: newline-delimited JSON over a unix socket.

A client sends one request object ``{"op": ..., ...}`` per connection. The
supervisor answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
{"type": <errors class name>, "message": ...}}``. The ``logs`` op with
``follow`` streams ``{"line": {...}}`` objects and ends with ``{"end": true}``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox import errors

MAX_LINE = 16 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def error_from(payload: dict[str, Any]) -> errors.SandboxError:
    cls = getattr(errors, str(payload.get("type", "")), errors.SandboxError)
    if not (isinstance(cls, type) and issubclass(cls, errors.SandboxError)):
        cls = errors.SandboxError
    return cls(str(payload.get("message", "sandbox supervisor error")))


class Client:
    """Blocking client for the supervisor socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise errors.SandboxUnavailable(
                f"the sandbox supervisor is not reachable at {self.path} ({exc.strerror or exc}); "
                "start it with: python -m sandbox.supervisor"
            ) from None
        return sock

    def call(self, op: str, timeout: float | None = None, **params: Any) -> Any:
        with self._connect(timeout or self.timeout) as sock:
            sock.sendall(encode({"op": op, **params}))
            reply = json.loads(_read_line(sock))
        if not reply.get("ok"):
            raise error_from(reply.get("error", {}))
        return reply.get("result")

    def stream(self, op: str, **params: Any) -> Iterator[dict[str, Any]]:
        sock = self._connect(None)
        try:
            sock.sendall(encode({"op": op, **params}))
            buffer = sock.makefile("rb")
            for raw in buffer:
                message = json.loads(raw)
                if "error" in message:
                    raise error_from(message["error"])
                if message.get("end"):
                    return
                yield message["line"]
        finally:
            sock.close()


def _read_line(sock: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_LINE:
            break
    if not chunks:
        raise errors.SandboxUnavailable("the sandbox supervisor closed the connection without answering")
    return b"".join(chunks)
