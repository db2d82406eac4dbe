"""The package-index proxy of a build sandbox: the only network a build has on the local executor.

A build sandbox has no network but loopback (the local executor cannot give a sandbox the host's network
without also exposing PostgreSQL, Redis and the web server). The supervisor serves this proxy on a unix
socket bound into the build (``/run/podium/index-proxy.sock``); inside, ``sandbox/runtime/build_env.py``
forwards a loopback port to it and points uv's ``HTTPS_PROXY`` there. The proxy opens a connection only to
a host and port on the allow list, the package index this Podium is configured with (pip's settings, as
the builds use them) plus ``PODIUM_BUILD_INDEX_HOSTS``. Everything else gets ``403`` and a line in the
build's log saying which host was refused.

Written here rather than taken from a proxy package: what is needed is ~80 lines of ``CONNECT`` and
absolute-form ``GET`` relaying on an asyncio unix server inside the supervisor's own event loop, with an
exact host allow list; full proxies (proxy.py, mitmproxy) are separate servers that listen on TCP, which is
the very thing a sandbox must not reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

DEFAULT_INDEX = "https://pypi.org/simple"
DEFAULT_INDEX_FILES = ("files.pythonhosted.org:443",)  # where PyPI's simple index points for files
HEADER_LIMIT = 64 * 1024


def allowed_hosts(pip_settings: Mapping[str, str], extra: str = "") -> frozenset[str]:
    """``host:port`` pairs a build may reach: the configured indexes' hosts (PyPI's two when no
    ``index-url`` is set and ``no-index`` is not), http(s) ``find-links``, and ``extra`` (space or comma
    separated ``host[:port]``)."""
    urls: list[str] = []
    if pip_settings.get("index-url"):
        urls.append(pip_settings["index-url"])
    elif pip_settings.get("no-index", "").lower() not in ("1", "true", "yes", "on"):
        urls.append(DEFAULT_INDEX)
    urls += pip_settings.get("extra-index-url", "").split()
    urls += pip_settings.get("find-links", "").split()
    found = {hostport for url in urls if (hostport := _host_port(url))}
    if DEFAULT_INDEX in urls:
        found.update(DEFAULT_INDEX_FILES)
    for item in extra.replace(",", " ").split():
        found.add(item.lower() if ":" in item else f"{item.lower()}:443")
    return frozenset(found)


def _host_port(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.hostname.lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class IndexProxy:
    """One proxy per build sandbox, on its own unix socket; ``note`` receives a line per refused host."""

    def __init__(self, allow: Iterable[str], note: Callable[[str], None]) -> None:
        self.allow = frozenset(allow)
        self.note = note
        self.server: asyncio.AbstractServer | None = None
        self._refused: set[str] = set()

    async def start(self, path: str, uid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.server = await asyncio.start_unix_server(self._handle, path=path, limit=HEADER_LIMIT)
        os.chown(path, uid, uid)
        os.chmod(path, 0o600)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                hostport = target.lower()
                host, _, port = hostport.rpartition(":")
                rest = b""
            else:
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    raise ValueError("not a proxy request")
                host, port = parts.hostname.lower(), str(parts.port or 80)
                hostport = f"{host}:{port}"
                origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                rest = head.replace(target.encode("latin-1"), origin_form.encode("latin-1"), 1)
            if hostport not in self.allow:
                self._refuse(writer, hostport)
                return
            up_reader, upstream = await asyncio.open_connection(host.strip("[]"), int(port))
            if method == "CONNECT":
                writer.write(f"{version} 200 Connection established\r\n\r\n".encode("latin-1"))
            else:
                upstream.write(rest)
            await asyncio.gather(_relay(reader, upstream), _relay(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            with contextlib.suppress(OSError):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def _refuse(self, writer: asyncio.StreamWriter, hostport: str) -> None:
        if hostport not in self._refused:
            self._refused.add(hostport)
            self.note(f"podium: the build tried to reach {hostport}, which is not the package index; refused")
        body = b"Podium builds reach only the package index.\n"
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
