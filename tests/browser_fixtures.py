"""Fixtures for browser tests: the built front end, a real uvicorn server on the
test database, and Debian's Chromium driven by Playwright's sync API.

Import them into a test module (``from tests.browser_fixtures import *``).
The server is shared by the whole session (Chromium is not: see :func:`browser`); tests that drive it need
``@pytest.mark.django_db(transaction=True)`` so their rows are committed and
visible to the server process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("PODIUM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 30.0

__all__ = ["artifacts", "browser", "frontend_build", "new_context", "podium_server", "run_podium"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    """The URL of the database pytest-django set up (``test_<name>``), for the server process."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    if host.startswith("/"):  # a unix socket directory
        return f"postgres://{auth}@/{quote(db['NAME'])}?host={quote(host, safe='')}&port={db.get('PORT') or 5432}"
    return f"postgres://{auth}@{host}:{db.get('PORT') or 5432}/{quote(db['NAME'])}"


@pytest.fixture(scope="session")
def frontend_build() -> Path:
    """``webapp/static/build/`` freshly built with npm (installed first when needed)."""
    static = ROOT / "static"
    build = ROOT / "webapp" / "static" / "build"
    npm = shutil.which("npm")
    if npm is None:
        if not (build / "app.js").exists():
            pytest.fail("npm is not installed and the front end has not been built (run `make up` or npm run build)")
        return build
    if not (static / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=static, check=True, capture_output=True)
    subprocess.run([npm, "run", "build"], cwd=static, check=True, capture_output=True)
    return build


@contextlib.contextmanager
def run_podium(log_name: str, env: dict[str, str] | None = None, worker: bool = False) -> Iterator[str]:
    """Podium's web server (and, with ``worker``, a Celery worker) on the test database, for tests that
    need real processes; yields the base URL. ``env`` adds or overrides variables (a sandbox var dir...).
    Output goes to ``test-artifacts/<log_name>``."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / log_name
    full_env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PODIUM_URL": url,
        "PODIUM_SECRET_KEY": settings.SECRET_KEY,  # the test's session cookies must open the server's pages
        "PODIUM_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    commands = [[sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1",
                 "--port", str(port), "--lifespan", "off", "--no-access-log"]]
    if worker:
        commands.append([sys.executable, "-m", "celery", "-A", "workers", "worker", "-l", "warning",
                         "--concurrency", "2", "--without-heartbeat", "--without-gossip", "--without-mingle"])
    with log_path.open("wb") as log:
        procs = [subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
                 for command in commands]
    try:
        _wait_until_serving(url, procs[0], log_path)
        yield url
    finally:
        for process in procs:
            process.terminate()
        for process in procs:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def podium_server(django_db_setup: Any, frontend_build: Path) -> Iterator[str]:
    """Base URL of ``uvicorn webapp.asgi:application`` serving the test database."""
    with run_podium("server.log") as url:
        yield url


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/accounts/login", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not answer within {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")


@pytest.fixture
def browser(podium_server: str) -> Iterator[Any]:
    """Chromium, launched per test: Playwright's sync API runs an event loop on this thread while it
    is open, and Django refuses database calls (the test database's flush included) under one."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (make test installs it: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser: Any, podium_server: str) -> Iterator[Callable[[], Any]]:
    """Make fresh browser contexts (separate cookie jars: separate people) on the server.

    Every page they open fails the test on an uncaught script error.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def make() -> Any:
        context = browser.new_context(base_url=podium_server, viewport={"width": 1360, "height": 900})
        context.set_default_timeout(10_000)
        context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``shot(page, "01-name")`` saves a full-page screenshot under test-artifacts/<test>/."""
    folder = ARTIFACTS / request.node.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    def shot(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot
