"""Helpers for model serving tests: build bundles and call the gateway in-process. The real sandbox
supervisor and the ``serving`` fixture live in tests/conftest.py (the editor's tests share them)."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from typing import Any

import httpx
import pytest

from tests.conftest import bearer, key_for
from webapp.asgi import application
from webapp.serving import recorder


def bundle_bytes(manifest: dict[str, Any], files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        entries = {"podium.json": json.dumps({"format": 1, **manifest}).encode()}
        for name, content in files.items():
            entries[name] = content if isinstance(content, bytes) else textwrap.dedent(content).encode()
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def custom_bundle(source: str, requirements: list[str] | None = None, **files: str) -> bytes:
    manifest = {"flavor": "custom", "entrypoint": "model.py:Model", "requirements": requirements or []}
    return bundle_bytes(manifest, {"model.py": source, **files})


def gateway() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")


def flush_calls() -> int:
    return recorder.flush()


@pytest.fixture
def deployer(alice, acme, serving):
    """alice's API client with a key that deploys, calls and reads, against the real sandbox supervisor."""
    return bearer(key_for(alice, acme, ["deploy", "invoke", "read"]))


@pytest.fixture
def invoke_key(alice, acme) -> str:
    return key_for(alice, acme, ["invoke"])

