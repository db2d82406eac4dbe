"""``make up`` end to end: ``python -m webapp.up`` with its own embedded services, as a user would run it.

Started directly rather than through make (the install is already done), with ``DATABASE_URL`` / ``REDIS_URL``
removed so it starts embedded servers in a throwaway var dir on free ports. The first run is shared by the
tests that look at it; a second run on the same data checks reuse and what happens when a child dies.
No Django test database here: nothing requests ``db``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from webapp.lib.embedded import EmbeddedPostgres, EmbeddedRedis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BASE_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, api_key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class UpRun:
    """One ``python -m webapp.up``, its output in a file, and every process it started."""

    var: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    processes: list[psutil.Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PODIUM_PORT']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> None:
        """Until /healthz answers 200 and up has announced it.

        up polls /healthz on its own schedule (up to a second apart), so a 200 seen here can come just before
        up prints its banner; stopping at that moment would race the banner.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while get(f"{self.url}/healthz") != 200 or "Podium is up at" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"up never announced a healthy Podium; its output ends with:\n{self.output()[-6000:]}")
            time.sleep(0.5)

    def record_processes(self) -> None:
        """Every process up started: its descendants, and the embedded servers (daemons, so not descendants)."""
        up = psutil.Process(self.proc.pid)
        self.processes = up.children(recursive=True)
        pg_port, redis_port = int(self.env["PODIUM_PG_PORT"]), int(self.env["PODIUM_REDIS_PORT"])
        for service in (EmbeddedPostgres(self.var, pg_port, None), EmbeddedRedis(self.var, redis_port, None)):
            pid = service.running_pid()
            assert pid is not None, f"embedded {service.name} is not running"
            server = psutil.Process(pid)
            self.processes += [server, *server.children(recursive=True)]

    def leftovers(self) -> list[str]:
        """The recorded processes still alive after a grace period, described."""
        _, alive = psutil.wait_procs(self.processes, timeout=15)
        return [describe(p) for p in alive if _not_zombie(p)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _not_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:120]}"
    except psutil.Error:
        return str(proc.pid)


def start_up(var: Path, ports: dict[str, str]) -> UpRun:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "PODIUM_URL", "PODIUM_ALLOWED_HOSTS", "PODIUM_HOST")
    }
    env |= {"PODIUM_VAR_DIR": str(var), "PODIUM_STOP_GRACE": "10", **ports}
    log = var.parent / f"up-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webapp.up"], cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return UpRun(var, env, proc, log)


@dataclass
class FirstRun:
    run: UpRun
    demo: dict[str, str]
    me_status: int
    exit_status: int
    leftovers: list[str]


@pytest.fixture(scope="module")
def var() -> Iterator[Path]:
    # Not under tmp_path: when root, the embedded servers run as an unprivileged user who must be able to reach
    # the var dir, and every new pytest session resets /tmp/pytest-of-root to 0700.
    path = Path(tempfile.mkdtemp(prefix="podium-up-test-")) / "var"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def ports() -> dict[str, str]:
    return {name: str(free_port()) for name in ("PODIUM_PORT", "PODIUM_PG_PORT", "PODIUM_REDIS_PORT")}


EVERY_PROCESS = {"up", "migrate", "bootstrap", "sandbox", "web", "worker", "beat"}


def prefixes(output: str) -> set[str]:
    return {line.split("|", 1)[0].strip() for line in output.splitlines() if "|" in line}


@pytest.fixture(scope="module")
def first_run(var: Path, ports: dict[str, str]) -> Iterator[FirstRun]:
    run = start_up(var, ports)
    try:
        run.wait_healthy()
        run.record_processes()
        demo = json.loads((var / "demo.json").read_text())
        me_status = get(f"{run.url}/api/v1/me", demo["api_key"])
        # Healthy means web answers; the worker may still be starting and say nothing yet on a busy machine.
        deadline = time.monotonic() + 30
        while not prefixes(run.output()) >= EVERY_PROCESS and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        run.stop()
    yield FirstRun(run, demo, me_status, run.proc.returncode, run.leftovers())


def test_it_answers_the_api_with_the_demo_key(first_run: FirstRun) -> None:
    assert set(first_run.demo) >= {"url", "username", "password", "workspace", "api_key"}
    assert first_run.me_status == 200


def test_it_prints_the_url_login_and_api_key_once_healthy(first_run: FirstRun) -> None:
    output = first_run.run.output()

    assert f"Podium is up at {first_run.run.url}" in output
    assert f"sign in as {first_run.demo['username']} / {first_run.demo['password']}" in output
    assert f"API key: {first_run.demo['api_key']}" in output


def test_it_prefixes_each_processes_output_with_its_name(first_run: FirstRun) -> None:
    assert prefixes(first_run.run.output()) >= EVERY_PROCESS


def test_sigint_stops_every_process_it_started(first_run: FirstRun) -> None:
    assert first_run.run.processes, "no processes were recorded"
    assert first_run.exit_status == 0, first_run.run.output()[-3000:]
    assert first_run.leftovers == []


def test_a_second_run_reuses_the_data_and_stops_everything_when_a_child_dies(
    first_run: FirstRun, var: Path, ports: dict[str, str]
) -> None:
    run = start_up(var, ports)
    try:
        run.wait_healthy()
        run.record_processes()
        assert get(f"{run.url}/api/v1/me", first_run.demo["api_key"]) == 200
        worker = next(p for p in psutil.Process(run.proc.pid).children() if "worker" in p.cmdline())

        worker.kill()
        status = run.proc.wait(60)
    finally:
        run.stop()

    assert status != 0
    assert "worker exited unexpectedly" in run.output()
    assert run.leftovers() == []
