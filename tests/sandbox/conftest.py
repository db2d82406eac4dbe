"""Shared fixtures for the sandbox suite: one real supervisor per session.

The supervisor runs as a separate process with its own var dir (under /tmp,
world-searchable so sandbox uids can reach their bind sources) and its own uid
range, so it never meets a supervisor started by ``make up``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig
from sandbox.errors import SandboxUnavailable
from sandbox.executors.local import LocalExecutor
from sandbox.protocol import Client

REPO = Path(__file__).resolve().parents[2]


def sandboxes_possible() -> str | None:
    if os.geteuid() != 0:
        return "the sandbox supervisor needs root"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (make test installs it)"
    return None


@pytest.fixture(scope="session")
def sandbox_var() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="podium-sbx-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox_config(sandbox_var: Path) -> SandboxConfig:
    return SandboxConfig(var_dir=sandbox_var, uid_count=1000)


def start_supervisor(config: SandboxConfig, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PODIUM_VAR_DIR": str(config.var_dir),
        "PODIUM_SANDBOX_UID_COUNT": str(config.uid_count),
        "PODIUM_TEST_CANARY": "host-secret-canary",
        **(extra_env or {}),
    }
    env.pop("PODIUM_SANDBOX_UID_BASE", None)  # each test supervisor claims a free block of uids
    log = open(config.var_dir / "supervisor.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.supervisor"], cwd=REPO, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while True:
        try:
            Client(config.socket_path, timeout=1).call("ping")
            return proc
        except SandboxUnavailable:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((config.var_dir / "supervisor.log").read_text())
        time.sleep(0.02)


def stop_supervisor(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def supervisor(sandbox_config: SandboxConfig) -> Iterator[subprocess.Popen[bytes]]:
    reason = sandboxes_possible()
    if reason:
        pytest.fail(f"the sandbox suite needs real sandboxes: {reason}")
    proc = start_supervisor(sandbox_config)
    yield proc
    stop_supervisor(proc)


@pytest.fixture(scope="session")
def local_executor(supervisor: subprocess.Popen[bytes], sandbox_config: SandboxConfig) -> LocalExecutor:
    return LocalExecutor(config=sandbox_config)


@pytest.fixture
def code_dir(sandbox_var: Path) -> Iterator[Path]:
    """A world-readable directory for code mounted at /code."""
    path = Path(tempfile.mkdtemp(prefix="code-", dir=sandbox_var))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
