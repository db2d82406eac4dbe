"""Warm runners: test runs that start with the model's libraries already imported.

A oneshot test run spends most of its time importing libraries (``import sklearn``
is 0.6-0.9 s in a fresh sandbox; the template's ``load()`` and ``predict()`` take
about 30 ms). A warm runner is a long-running sandbox that runs
``sandbox/runtime/warm_runner.py``: it imports the libraries the model's code
imports, then forks one child per test run (a zygote, as Android starts its apps).
Same sandbox, limits, environment and harness as a oneshot run; only the imports
happen ahead of time.

One runner serves one member, in one workspace, for one environment, resources,
network policy and set of imports (:func:`key_for`), so nothing a run leaves behind
in its sandbox is seen by another member. Lifecycle:

- started after a member's test run that found none (:func:`start_soon`, in a thread),
  or when the editor opens (``POST .../test-runs/warm``, :func:`prewarm`);
- used by :func:`find` when a run's key matches a ``ready`` runner whose sandbox runs;
- retired (row deleted, sandbox stopped by the ``post_delete`` receiver) when idle for
  ``PODIUM_IDE_WARM_IDLE_S`` (beat: ``webapp.ide.tasks.retire_idle_warm_runners``),
  when its member has more than ``PODIUM_IDE_WARM_RUNNERS`` (the least recently
  used goes), when it is found dead, or with its workspace or member.

GPU runs never use one: CUDA cannot be used in a child forked after the parent
initialised it, so they keep the oneshot path. ``PODIUM_IDE_WARM_RUNNERS=0`` turns
warm runners off.

Only module *names* are read here, with :mod:`ast` (parsing, never executing).
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from sandbox import (
    Limits,
    Network,
    Resources,
    RestartPolicy,
    SandboxError,
    SandboxHandle,
    SandboxSpec,
    State,
    get_executor,
)
from webapp.ide.models import TestRun, WarmRunner
from webapp.serving.bundles import RUNTIME_DIR
from webapp.serving.signals import stop_after_commit

log = logging.getLogger(__name__)

RUNTIME_FILES = ("warm_runner.py", "test_harness.py", "model_server.py")
MAX_PRELOAD = 64
PING_TIMEOUT_S = 2.0
# What a run may send back, as the supervisor allows a oneshot sandbox's log: lines are cut at LINE_MAX
# characters and the run is stopped past MAX_OUTPUT bytes, so a sandbox cannot grow the web process.
LINE_MAX = 16384
MAX_OUTPUT = 64 << 20
# Libraries that start threads when imported (or hold state that breaks across fork): their models run
# oneshot, since a child forked from a runner that imported them can hang.
FORK_UNSAFE = frozenset({"tensorflow", "keras", "jax", "grpc", "ray", "torch_xla", "pyspark"})


# What every test-run sandbox gets, oneshot or warm runner (webapp/ide/runner.py uses these too).
TEST_ENV = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_resources(manifest: dict[str, Any]) -> Resources:
    """The resources a test of a bundle gets: its manifest's, 1 CPU and 1 GiB unless it says."""
    asked = manifest.get("resources") or {}
    return Resources(cpu=float(asked.get("cpu", 1.0)), memory_mib=int(asked.get("memory_mib", 1024)),
                     gpus=int(asked.get("gpus", 0)))


def test_network(run: TestRun) -> Network:
    return Network.OUTBOUND if run.workspace.allow_outbound_network else Network.NONE


def per_user() -> int:
    return int(getattr(settings, "PODIUM_IDE_WARM_RUNNERS", 2))


def idle_s() -> float:
    return float(getattr(settings, "PODIUM_IDE_WARM_IDLE_S", 900))


def start_timeout_s() -> float:
    return float(getattr(settings, "PODIUM_IDE_WARM_START_TIMEOUT_S", 120))


# What to import ahead of time --------------------------------------------------------------


def imports_of(files: dict[str, str]) -> list[str]:
    """The modules the bundle's Python files import, for the runner to import ahead of time.

    ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b?`` (``?``: import it too
    if it is a submodule, silently skip it if it is only a name). The bundle's own modules, relative
    imports and files that do not parse are left out.
    """
    local = {path.split("/", 1)[0].removesuffix(".py") for path in files if path.endswith(".py")}
    found: set[str] = set()
    for path, text in files.items():
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(text, filename=path)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}?" for alias in node.names if alias.name != "*")
    chosen = sorted(name for name in found if name.split(".", 1)[0] not in local | {"__future__"})
    return chosen[:MAX_PRELOAD]


@cache
def _runtime_version() -> str:
    digest = hashlib.sha256()
    for name in RUNTIME_FILES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Wanted:
    """What a run needs from a runner; equal wants share a runner."""

    workspace_id: int
    user_id: int
    workspace_slug: str
    environment: Path
    resources: Resources
    network: Network
    preload: tuple[str, ...]

    @property
    def key(self) -> str:
        parts = [self.workspace_id, self.user_id, str(self.environment), self.resources.model_dump(mode="json"),
                 self.network.value, list(self.preload), _runtime_version()]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def wanted_for(run: TestRun, environment: Path, manifest: dict[str, Any], network: Network) -> Wanted | None:
    """What ``run`` needs, or None when it cannot use a runner (GPU runs, runners turned off, no member)."""
    chosen = test_resources(manifest)
    preload = tuple(imports_of(run.files))
    if chosen.gpus or per_user() <= 0 or run.created_by_id is None:
        return None
    if any(name.split(".", 1)[0] in FORK_UNSAFE for name in preload):
        return None
    return Wanted(workspace_id=run.workspace_id, user_id=run.created_by_id, workspace_slug=run.workspace.slug,
                  environment=environment, resources=chosen, network=network,
                  preload=preload)


# Finding and using one -----------------------------------------------------------------------


@dataclass
class Found:
    runner: WarmRunner
    address: str


def find(wanted: Wanted) -> Found | None:
    """A ready runner for ``wanted`` whose sandbox runs now; a dead one is retired on the way."""
    runner = WarmRunner.objects.filter(key=wanted.key, status="ready").first()
    if runner is None or runner.handle is None:
        return None
    executor = get_executor()
    try:
        handle = SandboxHandle.model_validate(runner.handle)
        addresses = executor.addresses(handle) if executor.poll(handle).state == State.RUNNING else []
    except SandboxError:
        addresses = []
    if not addresses:
        retire(runner, "its sandbox is no longer running")
        return None
    WarmRunner.objects.filter(pk=runner.pk).update(last_used_at=timezone.now(), runs=F("runs") + 1)
    return Found(runner, addresses[0])


def token_for(runner_id: str) -> str:
    """The runner's secret, derived from Podium's secret key (so that nothing needs storing)."""
    return hmac.new(settings.SECRET_KEY.encode(), f"warm-runner:{runner_id}".encode(), hashlib.sha256).hexdigest()


def connect(address: str, timeout: float) -> socket.socket:
    """A socket to a runner at ``unix:/path`` (local) or ``[http://]host:port`` (Nomad)."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address[len("unix:"):])
        return sock
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


class OutputLimit(Exception):
    """The run sent more than ``MAX_OUTPUT`` bytes."""


def _frames(sock: socket.socket, timeout: float) -> Iterator[dict[str, Any]]:
    """JSON objects, one a line, as the runner sends them. Bounded: a line longer than a frame of
    ``LINE_MAX`` characters can be is dropped, as is any line that is not a JSON object; past
    ``MAX_OUTPUT`` bytes in all it raises :class:`OutputLimit`."""
    sock.settimeout(timeout)
    buffer = bytearray()
    total = 0
    limit = LINE_MAX * 6 + 1024  # one line of text, JSON-escaped, and a few fields
    skipping = False  # inside an over-long line, dropped up to its end
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        total += len(chunk)
        if total > MAX_OUTPUT:
            raise OutputLimit(f"the run printed more than {MAX_OUTPUT >> 20} MiB")
        buffer += chunk
        while (end := buffer.find(b"\n")) != -1:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            if skipping:
                skipping = False
                continue
            frame = _parse(line)
            if frame is not None:
                yield frame
        if len(buffer) > limit:
            buffer.clear()
            skipping = True


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        frame = json.loads(line)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def ping(address: str, runner_id: str) -> dict[str, Any] | None:
    try:
        with connect(address, PING_TIMEOUT_S) as sock:
            sock.sendall(json.dumps({"op": "ping", "token": token_for(runner_id)}).encode() + b"\n")
            return next(_frames(sock, PING_TIMEOUT_S), None)
    except (OSError, OutputLimit):
        return None


class RunnerUnreachable(Exception):
    """The runner could not take the run (nothing of it ran): run it the oneshot way instead."""


def run(address: str, runner_id: str, bundle: bytes, sample_input: Any,
        wall_time_s: float) -> Iterator[dict[str, Any]]:
    """Send one run to the runner at ``address``; yield its line frames (``stream`` ``stdout`` or
    ``stderr``, ``text`` cut at ``LINE_MAX``), then the exit frame.

    Raises :class:`RunnerUnreachable` when the runner cannot be reached or refuses the run before
    anything ran. A connection that ends without an exit frame ends the iteration; past ``MAX_OUTPUT`` it
    yields an exit frame naming the output limit and closes the connection (the runner kills the run)."""
    header = {"op": "run", "token": token_for(runner_id), "size": len(bundle), "sample_input": sample_input,
              "wall_time_s": wall_time_s}
    try:
        sock = connect(address, PING_TIMEOUT_S)
        sock.settimeout(PING_TIMEOUT_S + len(bundle) / (10 << 20))  # at least 10 MB/s to a runner
        sock.sendall(json.dumps(header).encode() + b"\n" + bundle)
    except OSError as exc:
        raise RunnerUnreachable(str(exc)) from None
    with sock:
        # The runner enforces the wall time and then reports; this is only for a runner that hangs.
        frames = _frames(sock, wall_time_s + 30)
        try:
            first = next(frames, None)
        except (OSError, OutputLimit) as exc:
            raise RunnerUnreachable(str(exc)) from None
        if first is None or "error" in first:
            raise RunnerUnreachable(str((first or {}).get("error", "the runner closed the connection")))
        try:
            for frame in itertools.chain([first], frames):
                if "exit" in frame:
                    yield frame
                    return
                stream = frame.get("stream") if frame.get("stream") in ("stdout", "stderr") else "stderr"
                yield {"stream": stream, "text": str(frame.get("text", ""))[:LINE_MAX],
                       "time": frame.get("time") if isinstance(frame.get("time"), str) else None}
        except OutputLimit as exc:
            yield {"exit": None, "signal": None, "limit": "output", "reason": f"{exc}; it was stopped"}
        except OSError as exc:
            log.warning("lost the warm runner at %s during a run: %s", address, exc)


# Starting and retiring ---------------------------------------------------------------------


_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()


def start_soon(wanted: Wanted, model_name: str) -> None:
    """Start a runner for ``wanted`` in a thread unless one exists or is starting. Never raises."""
    if WarmRunner.objects.filter(key=wanted.key).exists():
        return

    def work() -> None:
        try:
            close_old_connections()
            ensure(wanted, model_name)
        except Exception:  # noqa: BLE001 - a runner that cannot start only means the next run is cold
            log.exception("could not start a warm runner")
        finally:
            connection.close()
            with _pending_lock:
                _pending.discard(thread)

    thread = threading.Thread(target=work, name="warm-runner-start", daemon=True)
    with _pending_lock:
        _pending.add(thread)
    thread.start()


def join_pending(timeout: float = 60.0) -> None:
    """Wait for the runners this process is starting (tests, and a clean shutdown)."""
    deadline = time.monotonic() + timeout
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def runner_dir(runner_id: str, workspace_id: int) -> Path:
    return Path(settings.PODIUM_ARTIFACTS_DIR) / str(workspace_id) / "warm-runners" / runner_id


def ensure(wanted: Wanted, model_name: str) -> WarmRunner | None:
    """Start a runner for ``wanted`` and wait until it answers; None when another process is starting
    it or it could not start (the reason is logged; runs stay on the oneshot path)."""
    try:
        with transaction.atomic():
            runner = WarmRunner.objects.create(
                id=secrets.token_hex(8), key=wanted.key, workspace_id=wanted.workspace_id, user_id=wanted.user_id,
                environment=str(wanted.environment), preload=list(wanted.preload))
    except IntegrityError:
        return None
    # Over the member's limit, the least recently used go, but never one that may be running a test now.
    busy_since = timezone.now() - timedelta(seconds=float(getattr(settings, "PODIUM_IDE_TEST_WALL_S", 120)) + 30)
    others = WarmRunner.objects.filter(user_id=wanted.user_id).exclude(pk=runner.pk).order_by("-last_used_at")
    for old in others[max(per_user() - 1, 0):]:
        if old.last_used_at < busy_since or old.status != "ready":
            retire(old, f"its member has more than {per_user()} warm runners")
    code = runner_dir(runner.pk, wanted.workspace_id) / "code"
    (code / "_podium").mkdir(parents=True)
    for name in RUNTIME_FILES:
        shutil.copy2(RUNTIME_DIR / name, code / "_podium" / name)
    for directory in (code.parent.parent, code.parent, code, code / "_podium"):
        directory.chmod(0o755)
    spec = SandboxSpec(
        workspace=wanted.workspace_slug,
        name=f"{model_name[:30].rstrip('-')}-warm-test",
        purpose="server",
        command=["python", "/code/_podium/warm_runner.py", "--preload", ",".join(wanted.preload)],
        code_dir=code,
        environment=wanted.environment,
        env={**TEST_ENV, "WARM_RUNNER_TOKEN": token_for(runner.pk)},
        resources=wanted.resources,
        limits=Limits(),
        network=wanted.network,
        restart=RestartPolicy(attempts=0),  # a crashed runner is retired; the next run starts a new one
    )
    executor = get_executor()
    try:
        handle = executor.start(spec)
    except SandboxError as exc:
        retire(runner, f"its sandbox could not start: {exc}")
        return None
    if not WarmRunner.objects.filter(pk=runner.pk).update(handle=handle.model_dump(mode="json")):
        executor.stop(handle, grace_s=1)  # retired (its workspace deleted?) while it started
        return None
    runner.handle = handle.model_dump(mode="json")
    deadline = time.monotonic() + start_timeout_s()
    while time.monotonic() < deadline:
        try:
            status = executor.poll(handle)
            addresses = [] if status.done else executor.addresses(handle)
        except SandboxError as exc:
            retire(runner, f"its sandbox could not be found: {exc}")
            return None
        if status.done:
            retire(runner, f"it stopped while starting: {status.reason or status.state}")
            return None
        answer = ping(addresses[0], runner.pk) if addresses else None
        if answer and answer.get("ready"):
            if not WarmRunner.objects.filter(pk=runner.pk).update(status="ready", last_used_at=timezone.now()):
                return None
            runner.status = "ready"
            log.info("warm runner %s ready: preloaded %s (%s ms)", runner.pk, answer.get("preloaded"),
                     answer.get("preload_ms"))
            return runner
        time.sleep(0.1)
    retire(runner, f"it did not answer within {start_timeout_s():.0f} s")
    return None


def retire_if_dead(found: Found) -> None:
    """After a run that went wrong on the runner's side: retire it unless it still answers."""
    if ping(found.address, found.runner.pk) is None:
        retire(found.runner, "it stopped answering")


def retire(runner: WarmRunner, why: str) -> None:
    """Delete the row; the ``post_delete`` receiver stops the sandbox once the deletion commits."""
    log.info("retiring warm runner %s: %s", runner.pk, why)
    WarmRunner.objects.filter(pk=runner.pk).delete()


def retire_idle() -> int:
    """Retire runners unused for ``PODIUM_IDE_WARM_IDLE_S`` and any stuck starting; how many went."""
    now = timezone.now()
    idle = Q(last_used_at__lt=now - timedelta(seconds=idle_s()))
    stuck = Q(status="starting", created_at__lt=now - timedelta(seconds=start_timeout_s() + 60))
    gone = 0
    for runner in WarmRunner.objects.filter(idle | stuck):
        # The condition again in the delete: a runner that a run picked up meanwhile stays.
        deleted, _ = WarmRunner.objects.filter(idle | stuck, pk=runner.pk).delete()
        if deleted:
            log.info("retiring warm runner %s: %s", runner.pk,
                     "it was idle" if runner.status == "ready" else "it never became ready")
            gone += 1
    return gone


def retire_dead(executor: Any = None) -> int:
    """The reconciler's part for warm runners (beat, with ``serving.reconciler``): retire each ready runner
    whose sandbox the executor no longer runs (gone, stopped or failed behind Podium's back); the next test
    run starts a new one. Nothing is retired while the executor cannot be reached. How many went."""
    from sandbox import SandboxHandle, SandboxNotFound, SandboxUnavailable

    executor = executor or get_executor()
    gone = 0
    for runner in WarmRunner.objects.filter(status="ready").exclude(handle=None):
        try:
            dead = executor.poll(SandboxHandle.model_validate(runner.handle)).done
        except SandboxNotFound:
            dead = True
        except SandboxUnavailable:
            return gone
        if dead:
            retire(runner, "its sandbox is no longer running")
            gone += 1
    return gone


@receiver(post_delete, sender=WarmRunner)
def _stop_deleted(sender: type[WarmRunner], instance: WarmRunner, **kwargs: Any) -> None:
    directory = runner_dir(instance.pk, instance.workspace_id)
    stop_after_commit(instance.handle, f"warm runner {instance.pk}",
                      then=lambda: shutil.rmtree(directory, ignore_errors=True))


# The editor's prewarm ------------------------------------------------------------------------


def prewarm(run_like: TestRun, manifest: dict[str, Any], model_name: str) -> str:
    """Start a runner for what a test run of ``run_like`` (not saved) would need, if the environment is
    built; the state in a word: ``ready``, ``starting``, ``cold`` (environment not built: the first Test
    builds it) or ``off`` (GPU model, or warm runners turned off)."""
    from webapp.serving import environments

    found = environments.lookup(run_like.requirements, run_like.workspace)
    if found is None:
        return "cold"
    wanted = wanted_for(run_like, found.path, manifest, test_network(run_like))
    if wanted is None:
        return "off"
    existing = WarmRunner.objects.filter(key=wanted.key).first()
    if existing is not None:
        WarmRunner.objects.filter(pk=existing.pk).update(last_used_at=timezone.now())
        return existing.status
    start_soon(wanted, model_name)
    return "starting"
