"""Where Podium is and which key to use: ``podium.login()`` or the environment.

Order: what ``podium.login(url, api_key)`` set in this process, else ``PODIUM_URL`` and ``PODIUM_API_KEY``
(or ``PODIUM_API_KEY_FILE``, a file holding the key). ``PODIUM_WORKSPACE`` picks the workspace when the
credentials can reach several (a key belongs to exactly one, so it is rarely needed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from podium.errors import ConfigurationError


@dataclass(frozen=True)
class Config:
    url: str
    api_key: str
    workspace: str | None = None


_login: Config | None = None


def _clean_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"Podium URL {url!r} is not an http(s) URL, e.g. https://podium.example.com")
    return url


def login(url: str, api_key: str, *, workspace: str | None = None) -> None:
    """Use this Podium server and API key for the rest of this process.

    The key is kept in memory only. Create one on the workspace's "API keys" page; deploying needs the
    ``deploy`` scope, predicting the ``invoke`` scope.
    """
    global _login
    if not api_key or not api_key.strip():
        raise ConfigurationError("podium.login() needs an API key")
    _login = Config(_clean_url(url), api_key.strip(), workspace)


def logout() -> None:
    """Forget what :func:`login` set; the environment applies again."""
    global _login
    _login = None


def _env_key() -> str | None:
    key = os.environ.get("PODIUM_API_KEY", "").strip()
    if key:
        return key
    path = os.environ.get("PODIUM_API_KEY_FILE", "").strip()
    if not path:
        return None
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigurationError(f"PODIUM_API_KEY_FILE={path}: cannot read it ({exc.strerror})") from exc
    if not key:
        raise ConfigurationError(f"PODIUM_API_KEY_FILE={path} is empty")
    return key


def resolve(url: str | None = None, api_key: str | None = None, workspace: str | None = None) -> Config:
    """The configuration to use: explicit arguments, then :func:`login`, then the environment."""
    base = _login
    url = url or (base.url if base else None) or os.environ.get("PODIUM_URL", "").strip() or None
    api_key = api_key or (base.api_key if base else None) or _env_key()
    workspace = workspace or (base.workspace if base else None) or os.environ.get("PODIUM_WORKSPACE") or None
    if not url:
        raise ConfigurationError(
            "no Podium URL: call podium.login(url, api_key) or set PODIUM_URL (e.g. http://localhost:8000)"
        )
    if not api_key:
        raise ConfigurationError(
            "no API key: call podium.login(url, api_key) or set PODIUM_API_KEY "
            "(create a key on your workspace's API keys page)"
        )
    return Config(_clean_url(url), api_key, workspace)
