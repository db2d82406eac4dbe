"""Fixtures for model serving: a real sandbox supervisor, an artifact store sandboxes can read,
Celery tasks run inline, and helpers to build bundles and call the gateway in-process."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sandbox
from sandbox.config import SandboxConfig
from tests.sandbox.conftest import sandboxes_possible, start_supervisor, stop_supervisor
from webapp.asgi import application
from webapp.serving import recorder, routing

SUPERVISOR: dict[str, int] = {}


@pytest.fixture(scope="session")
def serving_var() -> Iterator[Path]:
    reason = sandboxes_possible()
    if reason:
        pytest.fail(f"model serving tests need real sandboxes: {reason}")
    path = Path(tempfile.mkdtemp(prefix="podium-serving-", dir="/tmp"))
    path.chmod(0o755)
    config = SandboxConfig(var_dir=path, uid_base=310_000, uid_count=1000)
    proc = start_supervisor(config)
    SUPERVISOR["pid"] = proc.pid
    previous = os.environ.get("PODIUM_VAR_DIR")
    os.environ["PODIUM_VAR_DIR"] = str(path)
    os.environ["PODIUM_SANDBOX_UID_BASE"] = "310000"
    sandbox._executor.cache_clear()
    yield path
    stop_supervisor(proc)
    if previous is None:
        os.environ.pop("PODIUM_VAR_DIR", None)
    else:
        os.environ["PODIUM_VAR_DIR"] = previous
    os.environ.pop("PODIUM_SANDBOX_UID_BASE", None)
    sandbox._executor.cache_clear()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serving(serving_var: Path, settings: Any) -> Iterator[Path]:
    """Everything a deploy needs, with the Celery deploy task run inline."""
    from workers.celery import app

    artifacts = serving_var / "artifacts"
    artifacts.mkdir(exist_ok=True)
    artifacts.chmod(0o755)
    settings.PODIUM_ARTIFACTS_DIR = artifacts
    settings.PODIUM_READY_TIMEOUT_S = 60
    settings.PODIUM_DRAIN_S = 0
    app.conf.task_always_eager = True
    routing._cache.clear()
    yield serving_var
    app.conf.task_always_eager = False
    routing._cache.clear()
    recorder.flush()  # this test's call records belong to this test's rows
    stop_all_sandboxes()


def stop_all_sandboxes() -> None:
    """What one test started must not serve (or use memory) in the next."""
    from sandbox import SandboxHandle, get_executor
    from webapp.serving.models import ModelVersion

    for handle in ModelVersion.objects.exclude(sandbox=None).values_list("sandbox", flat=True):
        get_executor().stop(SandboxHandle.model_validate(handle), grace_s=1)


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
