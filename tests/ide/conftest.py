"""Real sandboxes for test runs and deploys from the editor: a sandbox supervisor of this
session, an artifact store sandboxes can read, and Celery tasks run inline."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.config import SandboxConfig
from tests.sandbox.conftest import sandboxes_possible, start_supervisor, stop_supervisor


@pytest.fixture(scope="session")
def ide_var() -> Iterator[Path]:
    reason = sandboxes_possible()
    if reason:
        pytest.fail(f"test runs need real sandboxes: {reason}")
    path = Path(tempfile.mkdtemp(prefix="podium-ide-", dir="/tmp"))
    path.chmod(0o755)
    proc = start_supervisor(SandboxConfig(var_dir=path, uid_base=320_000, uid_count=1000))
    previous = os.environ.get("PODIUM_VAR_DIR")
    os.environ["PODIUM_VAR_DIR"] = str(path)
    sandbox._executor.cache_clear()
    yield path
    stop_supervisor(proc)
    if previous is None:
        os.environ.pop("PODIUM_VAR_DIR", None)
    else:
        os.environ["PODIUM_VAR_DIR"] = previous
    sandbox._executor.cache_clear()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sandboxes(ide_var: Path, settings: Any) -> Iterator[Path]:
    from webapp.serving import recorder, routing
    from workers.celery import app

    artifacts = ide_var / "artifacts"
    artifacts.mkdir(exist_ok=True)
    artifacts.chmod(0o755)
    settings.PODIUM_ARTIFACTS_DIR = artifacts
    settings.PODIUM_READY_TIMEOUT_S = 60
    settings.PODIUM_DRAIN_S = 0
    app.conf.task_always_eager = True
    routing._cache.clear()
    yield ide_var
    app.conf.task_always_eager = False
    routing._cache.clear()
    recorder.flush()
    _stop_everything()


def _stop_everything() -> None:
    from sandbox import SandboxHandle, get_executor
    from webapp.ide.models import TestRun
    from webapp.serving.models import ModelVersion

    handles = [*ModelVersion.objects.exclude(sandbox=None).values_list("sandbox", flat=True),
               *TestRun.objects.exclude(sandbox=None).values_list("sandbox", flat=True)]
    for handle in handles:
        get_executor().stop(SandboxHandle.model_validate(handle), grace_s=1)
