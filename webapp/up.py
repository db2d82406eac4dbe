"""``make up``: the whole of Podium on this host, in the foreground (``python -m webapp.up``).

Terms used here:

- *step*: a command that must exit 0 before the processes start (:data:`STEPS`: migrate, bootstrap_demo).
- *process*: a long-running child from :data:`PROCESSES`, the one table of what ``make up`` runs (the sandbox
  supervisor, web, worker, beat). Adding one is one line there.

What happens, in order:

1. The embedded PostgreSQL and Redis (``webapp.lib.embedded``) start for ``$PODIUM_VAR_DIR``, unless
   ``DATABASE_URL`` / ``REDIS_URL`` point elsewhere. Servers left running by a killed run are reused, and
   stopped with the rest.
2. ``manage.py migrate --noinput``, then ``manage.py bootstrap_demo``, which writes
   ``$PODIUM_VAR_DIR/demo.json`` (so it exists before ``/healthz`` can answer).
3. Every process starts in its own process group with ``DATABASE_URL``, ``REDIS_URL``, ``PODIUM_URL`` and
   ``PODIUM_ALLOWED_HOSTS`` exported; each output line is prefixed with the child's name.
4. Once ``/healthz`` answers 200, the URL, the demo login and the API key are printed.

Stopping: SIGINT, SIGTERM or SIGHUP sends SIGTERM to every child's process group, SIGKILL to whatever is left
after ``PODIUM_STOP_GRACE`` seconds (default 10; a second ^C kills at once), then stops the embedded servers.
A child exiting on its own stops everything the same way and ``up`` exits 1, naming it.

Settings: ``PODIUM_HOST`` (default 127.0.0.1), ``PODIUM_PORT`` (8000), ``PODIUM_URL`` and
``PODIUM_ALLOWED_HOSTS`` (derived from host and port unless set), ``PODIUM_VAR_DIR``, ``PODIUM_PG_PORT``,
``PODIUM_REDIS_PORT``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import psutil

from webapp.lib import embedded
from webapp.lib.env import envint, envstr


@dataclass(frozen=True)
class ProcessSpec:
    """One process: a name for its output prefix, and a command line split like a shell would (no shell runs it)
    whose ``{placeholders}`` are filled per word from :func:`context`."""

    name: str
    command: str


# The processes `make up` runs, in start order. Placeholders: {python}, {host}, {port}, {var}, {url}.
# fmt: off
PROCESSES: tuple[ProcessSpec, ...] = (
    ProcessSpec("sandbox", "{python} -m sandbox.supervisor"),
    ProcessSpec("web", "{python} -m uvicorn webapp.asgi:application --host {host} --port {port} "
                       "--timeout-graceful-shutdown 5"),
    ProcessSpec("worker", "{python} -m celery -A workers worker -l info --concurrency 2"),
    ProcessSpec("beat", "{python} -m celery -A workers beat -l info "
                        "-S django_celery_beat.schedulers:DatabaseScheduler"),
)

# Run in order before the processes start; each must exit 0.
STEPS: tuple[ProcessSpec, ...] = (
    ProcessSpec("migrate", "{python} manage.py migrate --noinput"),
    ProcessSpec("bootstrap", "{python} manage.py bootstrap_demo --url {url} --output {var}/demo.json"),
)
# fmt: on

BASE_DIR = Path(__file__).resolve().parent.parent
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104 - recognising a wildcard bind, not binding one
COLORS = ("36", "33", "35", "32", "34", "31")


class UpError(RuntimeError):
    """``make up`` cannot go on; the message names what failed."""


class Interrupted(Exception):  # noqa: N818 - a request, not an error
    """A stop was requested before everything had started."""


def expand(spec: ProcessSpec, ctx: Mapping[str, str]) -> list[str]:
    """``spec``'s argv with placeholders filled; an unknown placeholder is an error, never left in."""
    try:
        return [word.format_map(ctx) for word in shlex.split(spec.command)]
    except KeyError as exc:
        raise UpError(f"{spec.name}: unknown placeholder {exc} in its command; known: {sorted(ctx)}") from None


def _url_host(host: str) -> str:
    if host in WILDCARD_HOSTS:
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


def context(var: Path) -> dict[str, str]:
    host = envstr("PODIUM_HOST", "127.0.0.1")
    port = str(envint("PODIUM_PORT", 8000))
    url = envstr("PODIUM_URL", f"http://{_url_host(host)}:{port}").rstrip("/")
    probe_host = "127.0.0.1" if host in WILDCARD_HOSTS else _url_host(host)
    return {
        "python": sys.executable,
        "host": host,
        "port": port,
        "var": str(var),
        "url": url,
        "healthz": f"http://{probe_host}:{port}/healthz",
    }


def allowed_hosts(ctx: Mapping[str, str]) -> str:
    """The hosts Django must accept: the public URL's, the bind address's, loopback for the health probe."""
    hosts = [urllib.parse.urlsplit(ctx["url"]).hostname or "", "127.0.0.1", "localhost", "[::1]"]
    if ctx["host"] not in WILDCARD_HOSTS:
        hosts.append(_url_host(ctx["host"]))
    hosts = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in hosts if h]
    return ",".join(dict.fromkeys(hosts))


class Output:
    """Writes children's lines to our stdout, prefixed with their padded name (coloured on a terminal)."""

    def __init__(self, names: Sequence[str], stream: IO[str] = sys.stdout) -> None:
        self.width = max(len(n) for n in names)
        self.stream = stream
        self.lock = threading.Lock()
        self.color = stream.isatty() and not os.environ.get("NO_COLOR")
        self.colors = {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self.width}} |"
        if self.color:
            prefix = f"\033[{self.colors.get(name, '0')}m{prefix}\033[0m"
        with self.lock:
            self.stream.write(f"{prefix} {text.rstrip()}\n")
            self.stream.flush()

    def pump(self, name: str, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            self.line(name, raw.decode(errors="replace"))
        pipe.close()


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    reader: threading.Thread
    tree: list[psutil.Process] = field(default_factory=list)


def _pdeathsig_prefix() -> list[str]:
    # Children run in their own process groups (so ^C reaches them only through our orderly stop); if `up`
    # itself is SIGKILLed they would be orphans. util-linux's setpriv makes the kernel send them SIGTERM then.
    # We use it rather than preexec_fn, which is unsafe once reader threads exist.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv and sys.platform == "linux" else []


class Up:
    """Runs steps then children, and stops everything on a signal or when a child dies."""

    def __init__(self, ctx: dict[str, str], env: dict[str, str], output: Output) -> None:
        self.ctx = ctx
        self.env = env
        self.output = output
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.signals_seen = 0
        self.started = time.monotonic()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_seen += 1
        if self.signals_seen == 1:
            self.output.line("up", f"{signal.Signals(signum).name}: stopping (again to kill at once)")
        self.stop_requested.set()

    def spawn(self, spec: ProcessSpec) -> Child:
        proc = subprocess.Popen(
            _pdeathsig_prefix() + expand(spec, self.ctx),
            cwd=BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        reader = threading.Thread(target=self.output.pump, args=(spec.name, proc.stdout), daemon=True)
        reader.start()
        child = Child(spec.name, proc, reader)
        self.children.append(child)
        return child

    def run_step(self, spec: ProcessSpec) -> None:
        child = self.spawn(spec)
        while child.proc.poll() is None:
            if self.stop_requested.wait(0.1):
                raise Interrupted(spec.name)
        child.reader.join(5)
        self.children.remove(child)
        if child.proc.returncode != 0:
            raise UpError(f"{spec.name} failed with exit status {child.proc.returncode}")

    def supervise(self) -> str | None:
        """Block until a signal (returns None) or a child's exit (returns a message naming it)."""
        while not self.stop_requested.wait(0.2):
            for child in self.children:
                code = child.proc.poll()
                if code is not None:
                    return f"{child.name} exited unexpectedly with status {code}"
        return None

    def stop_children(self) -> None:
        grace = envint("PODIUM_STOP_GRACE", 10)
        for child in self.children:
            with contextlib.suppress(psutil.Error):
                child.tree = psutil.Process(child.proc.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        seen = self.signals_seen
        while any(c.proc.poll() is None for c in self.children) and time.monotonic() < deadline:
            if self.signals_seen > max(seen, 1):
                break
            time.sleep(0.1)
        for child in self.children:
            if child.proc.poll() is None:
                self.output.line("up", f"{child.name} did not stop within {grace}s; killing it")
            # The group may outlive its leader (a worker's pool processes), and a descendant may have left it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            for proc in child.tree:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            child.proc.wait()
            child.reader.join(2)

    def announce_when_ready(self) -> None:
        """Poll /healthz; once it answers 200 ``ok`` (not ``degraded``: the executor is up too), print how to
        sign in and call the API.

        Polls fast while nothing listens, then slowly (each probe is a line in web's log); says why it is
        still waiting after 20 s and every minute after that.
        """
        next_report = time.monotonic() + 20
        while not self.stop_requested.is_set():
            status, detail = probe(self.ctx["healthz"])
            if status == 200:
                break
            if time.monotonic() >= next_report:
                self.output.line("up", f"still waiting for {self.ctx['healthz']}: {detail}")
                next_report += 60
            self.stop_requested.wait(0.2 if status is None else 1.0)
        else:
            return
        self.output.line("up", f"ready in {time.monotonic() - self.started:.1f}s")
        for text in banner(self.ctx, Path(self.ctx["var"]) / "demo.json").splitlines():
            self.output.line("up", text)


def probe(url: str) -> tuple[int | None, str]:
    """GET ``url``: (status, short body), or (None, why not) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
            body = response.read(8000).decode(errors="replace")
            try:
                degraded = json.loads(body).get("status") == "degraded"
            except (ValueError, AttributeError):
                degraded = False
            if degraded:  # up, but the executor is not (yet): not ready to announce
                return None, f"{response.status} {body[:300]}"
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"{exc.code} {exc.read(300).decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)


def banner(ctx: Mapping[str, str], demo_file: Path) -> str:
    try:
        demo = json.loads(demo_file.read_text())
    except (OSError, ValueError) as exc:
        return f"Podium is up at {ctx['url']} (could not read {demo_file}: {exc})"
    return (
        f"Podium is up at {demo.get('url', ctx['url'])}\n"
        f"  sign in as {demo.get('username')} / {demo.get('password')}"
        f"  (workspace: {demo.get('workspace')})\n"
        f"  API key: {demo.get('api_key')}\n"
        f"  try: curl -H 'Authorization: Bearer {demo.get('api_key')}' {ctx['url']}/api/v1/me\n"
        f"  (credentials are in {demo_file}; stop with ^C)"
    )


def child_env(ctx: Mapping[str, str], urls: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(urls)
    env.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    env["PODIUM_VAR_DIR"] = ctx["var"]
    env["PODIUM_URL"] = ctx["url"]
    env["PODIUM_ALLOWED_HOSTS"] = envstr("PODIUM_ALLOWED_HOSTS", allowed_hosts(ctx))
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the prefixer as they are written
    return env


def main() -> int:
    var = embedded.var_dir()
    var.mkdir(parents=True, exist_ok=True)
    ctx = context(var)
    output = Output(["up"] + [s.name for s in STEPS + PROCESSES])
    up = Up(ctx, {}, output)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, up.on_signal)

    urls: dict[str, str] = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL") if os.environ.get(k)}
    services: list[embedded.EmbeddedService] = []
    failure: str | None = None
    try:
        services = start_services(urls, output)
        up.env = child_env(ctx, urls)
        for step in STEPS:
            up.run_step(step)
        for spec in PROCESSES:
            if up.stop_requested.is_set():
                raise Interrupted(spec.name)
            up.spawn(spec)
        threading.Thread(target=up.announce_when_ready, daemon=True).start()
        failure = up.supervise()
    except (UpError, embedded.EmbeddedError) as exc:
        failure = str(exc)
    except Interrupted:
        pass
    finally:
        up.stop_requested.set()
        up.stop_children()
        embedded.stop_all(services)
    if failure:
        output.line("up", f"stopped: {failure}")
        return 1
    output.line("up", "stopped")
    return 0


def start_services(urls: dict[str, str], output: Output) -> list[embedded.EmbeddedService]:
    """Start the embedded servers ``urls`` lacks; return every embedded server in use, to stop on exit.

    A server left running by an earlier, killed run is reused and adopted: `make up` leaves nothing behind.
    """
    in_use: list[embedded.EmbeddedService] = []
    try:
        for service in embedded.services():
            if service.env_var in urls:
                output.line("up", f"{service.env_var} is set: not starting the embedded {service.name}")
                continue
            running = service.start()
            in_use.append(service)
            urls[service.env_var] = running.url
            how = "started" if running.started else "reusing the running"
            output.line("up", f"{how} embedded {service.name} (pid {running.pid}, data in {service.home})")
    except BaseException:
        embedded.stop_all(in_use)
        raise
    return in_use


if __name__ == "__main__":
    sys.exit(main())
