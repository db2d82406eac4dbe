"""The embedded PostgreSQL and Redis: real servers in a throwaway var dir, on free ports.

No Django test database here: these tests start their own servers and never request ``db``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from webapp.lib.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis, service_user

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def var() -> Iterator[Path]:
    # Not under tmp_path: when root, the servers run as an unprivileged user who must be able to reach the var
    # dir, and every new pytest session (a colleague's, say) resets /tmp/pytest-of-root to 0700.
    path = Path(tempfile.mkdtemp(prefix="podium-test-")) / "var"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def pg(var: Path) -> Iterator[EmbeddedPostgres]:
    service = EmbeddedPostgres(var, free_port(), service_user())
    yield service
    service.stop()


@pytest.fixture
def rd(var: Path) -> Iterator[EmbeddedRedis]:
    service = EmbeddedRedis(var, free_port(), service_user())
    yield service
    service.stop()


def test_postgres_starts_with_a_podium_database(pg: EmbeddedPostgres) -> None:
    running = pg.start()

    assert running.started
    assert running.url.startswith(f"postgres://podium:{pg.password()}@127.0.0.1:{pg.port}/podium")
    with psycopg.connect(running.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("podium",)


def test_postgres_rejects_a_wrong_password(pg: EmbeddedPostgres) -> None:
    pg.start()

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"postgres://podium:wrong@127.0.0.1:{pg.port}/podium", connect_timeout=5)


def test_postgres_is_reused_while_it_runs(pg: EmbeddedPostgres) -> None:
    first = pg.start()

    second = EmbeddedPostgres(pg.var, pg.port, pg.user).start()

    assert (second.started, second.pid, second.url) == (False, first.pid, first.url)


def test_postgres_stops_and_keeps_its_data(pg: EmbeddedPostgres) -> None:
    first = pg.start()
    with psycopg.connect(first.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")

    assert pg.stop() is True
    assert is_gone(first.pid)
    assert pg.running_pid() is None
    assert pg.stop() is False

    again = pg.start()
    assert again.started and again.pid != first.pid
    with psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)


def test_postgres_starts_over_a_stale_pid_file(pg: EmbeddedPostgres) -> None:
    pg.start()
    pg.stop()
    # A pid file naming a live process that is not this cluster's postmaster (here: the test itself).
    (pg.data / "postmaster.pid").write_text(f"{os.getpid()}\n{pg.data}\n0\n{pg.port}\n\n127.0.0.1\n0 0\nready\n")

    running = pg.start()

    assert running.started and running.pid != os.getpid()


def test_postgres_failure_quotes_its_log(pg: EmbeddedPostgres) -> None:
    pg.start()
    pg.stop()
    with open(pg.data / "postgresql.conf", "a") as conf:
        conf.write("no_such_setting = 1\n")

    with pytest.raises(EmbeddedError, match="no_such_setting"):
        pg.start(timeout=20)


def test_it_refuses_a_port_another_program_listens_on(var: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(EmbeddedError, match=f"127.0.0.1:{port} is already used.*PODIUM_PG_PORT"):
            EmbeddedPostgres(var, port, service_user()).start()


def test_redis_starts_and_requires_its_password(rd: EmbeddedRedis) -> None:
    running = rd.start()

    assert running.started
    assert redis.Redis.from_url(running.url).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=rd.port).ping()


def test_redis_is_reused_while_it_runs(rd: EmbeddedRedis) -> None:
    first = rd.start()

    second = EmbeddedRedis(rd.var, rd.port, rd.user).start()

    assert (second.started, second.pid, second.url) == (False, first.pid, first.url)


def test_redis_stops_and_starts_over_a_stale_pid_file(rd: EmbeddedRedis) -> None:
    first = rd.start()
    assert rd.stop() is True
    assert is_gone(first.pid)
    (rd.home / "redis.pid").write_text(f"{os.getpid()}\n")

    again = rd.start()

    assert again.started and again.pid not in (first.pid, os.getpid())
    assert redis.Redis.from_url(again.url).ping()


def run_cli(var: Path, *cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    base |= {
        "PODIUM_VAR_DIR": str(var),
        "PODIUM_PG_PORT": str(free_port()),
        "PODIUM_REDIS_PORT": str(free_port()),
    }
    return subprocess.run(
        [sys.executable, "-m", "webapp.lib.embedded", "run", "--", *cmd],
        cwd=BASE_DIR,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_exports_the_urls_stops_what_it_started_and_keeps_the_exit_status(var: Path) -> None:
    script = (
        "import os, psycopg, redis, sys\n"
        "psycopg.connect(os.environ['DATABASE_URL']).close()\n"
        "redis.Redis.from_url(os.environ['REDIS_URL']).ping()\n"
        "sys.exit(7)\n"
    )

    result = run_cli(var, sys.executable, "-c", script)

    assert result.returncode == 7, result.stderr
    assert EmbeddedPostgres(var, 0, None).running_pid() is None
    assert EmbeddedRedis(var, 0, None).running_pid() is None


def test_run_leaves_a_configured_database_alone(var: Path) -> None:
    result = run_cli(
        var,
        sys.executable,
        "-c",
        "import os; print(os.environ['DATABASE_URL'])",
        DATABASE_URL="postgres://elsewhere.example/podium",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "postgres://elsewhere.example/podium"
    assert not (var / "postgres").exists()
