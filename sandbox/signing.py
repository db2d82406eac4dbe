"""Signed, expiring URLs for sandbox artifacts (code and model files).

Nomad clients fetch a sandbox's code and artifacts over HTTP from Podium
(``GetterSource`` of the job's artifacts). The URL names the directory and
carries ``expires`` and an HMAC-SHA256 ``signature`` over both, so the web
view that serves it (``PODIUM_ARTIFACT_URL``) needs no session and grants
nothing else. Verify with ``verify_signature`` before serving a byte.

An *upload* URL (``method="PUT"``: a Nomad build job sending the environment it
built) is signed over the method too, so a URL made for fetching can never be
used to write, nor the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode


def _signature(path: str, expires: int, key: bytes, method: str = "GET") -> str:
    material = f"{path}\n{expires}" if method == "GET" else f"{method}\n{path}\n{expires}"
    return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()


def sign_url(base_url: str, path: str, key: bytes, ttl_s: int = 3600, now: float | None = None,
             method: str = "GET") -> str:
    """``{base_url}/{path}?expires=...&signature=...``; ``path`` is relative to the artifact store."""
    path = path.lstrip("/")
    expires = int((now or time.time()) + ttl_s)
    query = urlencode({"expires": expires, "signature": _signature(path, expires, key, method)})
    return f"{base_url.rstrip('/')}/{quote(path)}?{query}"


def verify_signature(path: str, expires: str, signature: str, key: bytes, now: float | None = None,
                     method: str = "GET") -> bool:
    """True when ``signature`` was made by ``sign_url`` for ``path`` and ``method`` and has not expired."""
    try:
        when = int(expires)
    except ValueError:
        return False
    if when < (now or time.time()):
        return False
    return hmac.compare_digest(_signature(path.lstrip("/"), when, key, method), signature)
