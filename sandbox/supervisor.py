"""The local executor's supervisor: owns every sandbox on this host.

Run it as root with ``python -m sandbox.supervisor`` (``make up`` does, and so
do the tests). It listens on ``$PODIUM_VAR_DIR/sandbox/supervisor.sock``
(mode 0600) for the JSON requests of ``sandbox.protocol`` and, for each replica
of each sandbox:

1. picks a free uid from the sandbox range (one uid per live replica),
2. mounts its scratch tmpfs (size = the disk limit) and makes its socket dir,
3. creates its cgroup (memory, pids, cpu) under ``podium/<instance>/``,
4. forks; the child joins the cgroup, sets rlimits, and execs
   ``setpriv`` -> ``bwrap`` (see ``sandbox.profile``) -> the user's command,
5. timestamps stdout/stderr into ``logs/<id>.jsonl``,
6. probes a server replica's ``GET /healthz`` on its socket (``SandboxSpec.health``) and kills
   one that stops answering, whatever the reason, so that it is restarted like a crash,
7. when it ends: names the limit it hit, kills what is left in the cgroup,
   unmounts the scratch (wiping it), frees the uid, and restarts a crashed
   server with exponential backoff.

State is persisted to ``state/<id>.json`` on every change. Replicas die with the
supervisor (``--die-with-parent``); when it starts again it sweeps what they
left, starts servers again, and marks interrupted one-shot runs and kernels as
failed with that reason.

Fail closed: if bubblewrap is missing or broken (checked at start-up by running
a real sandbox), ``start`` refuses with the reason and ``ping`` reports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import hashlib
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from sandbox import gpus as gpu_devices
from sandbox import profile, seccomp
from sandbox.cgroups import Cgroups, CgroupStats
from sandbox.config import SandboxConfig
from sandbox.errors import (
    ResourceUnavailable,
    SandboxError,
    SandboxNotFound,
    SandboxUnavailable,
    SpecNotSupported,
)
from sandbox.index_proxy import IndexProxy, allowed_hosts
from sandbox.paths import unreachable_reason
from sandbox.protocol import MAX_LINE, encode
from sandbox.spec import HealthCheck, LimitName, ReplicaStatus, SandboxSpec, SandboxStatus, State

log = logging.getLogger("podium.sandbox.supervisor")

MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2
PR_SET_CHILD_SUBREAPER = 36
READ_CHUNK = 65536
LINE_MAX = 16384
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _now() -> datetime:
    return datetime.now(UTC)


# -- host plumbing -----------------------------------------------------------


def _mount_tmpfs(target: Path, size_bytes: int, uid: int) -> None:
    options = f"size={size_bytes},mode=0700,uid={uid},gid={uid}".encode()
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(target))


def _umount(target: Path) -> None:
    _libc.umount2(str(target).encode(), MNT_DETACH)


def _mounts_under(root: Path) -> list[Path]:
    prefix = str(root) + "/"
    with open("/proc/self/mounts") as handle:
        found = [Path(line.split()[1]) for line in handle if line.split()[1].startswith(prefix)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _venv_python_prefix(venv: Path) -> Path | None:
    """The base interpreter's prefix a venv needs, when it is outside /usr."""
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        raise SandboxError(f"environment {venv} is not a virtual environment (no pyvenv.cfg)")
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            home = Path(value.strip()).resolve()
            prefix = home.parent if home.name == "bin" else home
            return None if prefix == Path("/usr") or Path("/usr") in prefix.parents else prefix
    return None


def _give_build_dirs(spec: SandboxSpec, uid: int) -> None:
    """A build writes its new environment and its scope's cache: both become the build uid's. The output is
    made empty by the caller; a cache last written under another uid (another block of uids) is handed over
    whole."""
    assert spec.output_dir is not None
    os.chown(spec.output_dir, uid, uid)
    spec.output_dir.chmod(0o755)
    if spec.cache_dir is not None and spec.cache_dir.stat().st_uid != uid:
        for dirpath, dirnames, filenames in os.walk(spec.cache_dir):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                with contextlib.suppress(OSError):
                    os.lchown(name, uid, uid)


def _seal(output: Path) -> None:
    """Make a finished build's environment root's and read-only (world-readable, so every sandbox uid can
    mount it): nothing a later sandbox runs can change it."""
    for dirpath, dirnames, filenames in os.walk(output):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            with contextlib.suppress(OSError):
                mode = os.lstat(name).st_mode
                os.lchown(name, 0, 0)
                if not stat.S_ISLNK(mode):
                    executable = 0o555 if mode & 0o111 or stat.S_ISDIR(mode) else 0o444
                    os.chmod(name, executable)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _become_subreaper() -> None:
    """bwrap's outer process exits as soon as the command does, orphaning its
    in-namespace init; as subreaper the supervisor inherits and reaps it instead
    of leaving zombies with sandbox uids to the host's init."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans(tracked: set[int]) -> None:
    """Reap exited children that asyncio is not waiting for (adopted orphans)."""
    me = str(os.getpid())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in tracked:
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)


def _enter_sandbox_cgroup(procs_files: list[str], limits: list[tuple[int, int, int]]) -> None:
    """Runs in the forked child before exec (async-signal-safe enough: no locks)."""
    pid = str(os.getpid()).encode()
    for name in procs_files:
        fd = os.open(name, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))
    os.umask(0o022)


UID_BLOCKS_FROM = 200_000
UID_LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")  # noqa: S108


BUILD_UIDS = 64


@dataclass(frozen=True)
class UidRange:
    """The sandbox uids this supervisor owns: one per live replica from ``usable``; builds take one of the
    ``BUILD_UIDS`` before the last, chosen by their cache (so a scope's cache keeps one owner); the last one
    is kept for self-checks.

    Builds of two scopes may share a uid: what keeps them apart is that neither can see the other's files
    (each mounts only its own cache and output) nor processes (each has its own pid namespace)."""

    base: int
    count: int
    lock: Any  # the open, flock-ed lock file; held for the supervisor's life

    @property
    def usable(self) -> range:
        return range(self.base, self.base + self.count - 1 - BUILD_UIDS)

    def build_uid(self, scope: str) -> int:
        digest = int.from_bytes(hashlib.sha256(scope.encode()).digest()[:4], "big")
        return self.base + self.count - 1 - BUILD_UIDS + digest % BUILD_UIDS

    @property
    def check_uid(self) -> int:
        return self.base + self.count - 1


def claim_uids(config: SandboxConfig) -> UidRange:
    """Claim a block of uids no other supervisor on this host uses, with a
    host-wide lock per block, so two installations never share sandbox uids."""
    bases = [config.uid_base] if config.uid_base else [UID_BLOCKS_FROM + k * config.uid_count for k in range(400)]
    for base in bases:
        handle = open(UID_LOCK_DIR / f"podium-sandbox-uids-{base}-{config.uid_count}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return UidRange(base=base, count=config.uid_count, lock=handle)
    if config.uid_base:
        raise SystemExit(
            f"sandbox uids {config.uid_base}-{config.uid_base + config.uid_count - 1} are used by "
            "another sandbox supervisor on this host; unset PODIUM_SANDBOX_UID_BASE to pick a free block"
        )
    raise SystemExit("no free block of sandbox uids is left on this host")


def check_bwrap(config: SandboxConfig, uid: int) -> tuple[bool, str]:
    """Run a real (tiny) sandbox as an unprivileged uid; say what went wrong."""
    bwrap = shutil.which(config.bwrap)
    if bwrap is None:
        return False, f"bubblewrap ({config.bwrap}) is not installed: install the bubblewrap package"
    if shutil.which(config.setpriv) is None:
        return False, f"setpriv ({config.setpriv}) is not installed: install util-linux"
    args = [
        config.setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        bwrap,
        *profile.namespaces(),
        "--ro-bind",
        "/usr",
        "/usr",
        *[a for target, link in profile.SYSTEM_SYMLINKS for a in ("--symlink", target, link)],
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        "1048576",
        "--tmpfs",
        "/tmp",  # noqa: S108
        "--remount-ro",
        "/",
        "--clearenv",
        "--",
        "/bin/sh",
        "-c",
        f"test $(id -u) = {uid} && test -w /tmp && ! test -w /usr && ! test -w /",
    ]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bubblewrap could not run: {exc}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        return False, f"bubblewrap is installed but cannot create a sandbox here: {detail}"
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    return True, f"{version or 'bubblewrap'} works"


# -- model -------------------------------------------------------------------


@dataclass
class Replica:
    index: int
    state: State = State.PENDING
    exit_code: int | None = None
    reason: str | None = None
    limit: LimitName | None = None
    restarts: int = 0
    crashes: int = 0  # since the last reset_after_s of healthy running
    last_exit: str | None = None  # why it last ended, kept after it is restarted
    uid: int | None = None
    gpus: list[int] = field(default_factory=list)
    run_dir: Path | None = None
    # runtime only
    proc: asyncio.subprocess.Process | None = None
    waiter: asyncio.Task[None] | None = None
    prober: asyncio.Task[None] | None = None
    pending: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    killed_for: str | None = None
    started_mono: float = 0.0
    proxy: IndexProxy | None = None
    disk_watch: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "state": self.state.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "limit": self.limit,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "gpus": self.gpus,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Replica:
        return cls(
            index=data["index"],
            state=State(data["state"]),
            exit_code=data.get("exit_code"),
            reason=data.get("reason"),
            limit=data.get("limit"),
            restarts=data.get("restarts", 0),
            last_exit=data.get("last_exit"),
            gpus=list(data.get("gpus", [])),
        )


@dataclass
class Sandbox:
    id: str
    spec: SandboxSpec
    replicas: list[Replica]
    desired: str = "running"
    created_at: datetime = field(default_factory=_now)
    finished_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    log_file: BinaryIO | None = None
    log_bytes: int = 0
    wake: asyncio.Future[None] | None = None

    def state(self) -> State:
        states = [r.state for r in self.replicas]
        if all(s.done for s in states):
            if self.desired == "stopped" or State.STOPPED in states:
                return State.STOPPED if all(s != State.FAILED for s in states) else State.FAILED
            return State.EXITED if all(s == State.EXITED for s in states) else State.FAILED
        if State.RESTARTING in states:
            return State.RESTARTING
        if State.PENDING in states:
            return State.PENDING
        return State.RUNNING

    def status(self) -> SandboxStatus:
        state = self.state()
        culprit = next((r for r in self.replicas if r.state == State.FAILED), None)
        culprit = culprit or next((r for r in self.replicas if r.reason), None)
        exit_code = culprit.exit_code if culprit else (0 if state == State.EXITED else None)
        return SandboxStatus(
            id=self.id,
            state=state,
            exit_code=exit_code,
            reason=culprit.reason if culprit else None,
            limit=culprit.limit if culprit else None,
            restarts=sum(r.restarts for r in self.replicas),
            replicas=[
                ReplicaStatus(
                    index=r.index,
                    state=r.state,
                    exit_code=r.exit_code,
                    reason=r.reason,
                    limit=r.limit,
                    restarts=r.restarts,
                    last_exit=r.last_exit,
                    address=self.address(r),
                )
                for r in self.replicas
            ],
            started_at=self.created_at,
            finished_at=self.finished_at,
            warnings=self.warnings,
        )

    def address(self, replica: Replica) -> str | None:
        if replica.state != State.RUNNING or replica.run_dir is None:
            return None
        return f"unix:{replica.run_dir / 'sock' / 'server.sock'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.model_dump(mode="json"),
            "desired": self.desired,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "warnings": self.warnings,
            "replicas": [r.to_json() for r in self.replicas],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sandbox:
        finished = data.get("finished_at")
        return cls(
            id=data["id"],
            spec=SandboxSpec.model_validate(data["spec"]),
            desired=data["desired"],
            created_at=datetime.fromisoformat(data["created_at"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            warnings=list(data.get("warnings", [])),
            replicas=[Replica.from_json(r) for r in data["replicas"]],
        )


def explain_exit(
    rc: int, stats: CgroupStats, killed_for: str | None, disk_full: bool, spec: SandboxSpec
) -> tuple[State, str | None, LimitName | None]:
    """Final replica state, the reason in words, and the limit it hit (if any).

    bwrap exits with 128+N when the command died of signal N.
    """
    sig = rc - 128 if rc > 128 else None
    limits = spec.limits
    if killed_for == "stop":
        return State.STOPPED, "stopped", None
    if stats.oom_kills:
        return (
            State.FAILED,
            (f"memory limit: the sandbox used more than its {spec.resources.memory_mib} MiB of memory and was killed"),
            "memory",
        )
    if killed_for == "health":
        check = spec.health
        return (
            State.FAILED,
            (f"health check: the server did not answer GET {check.path} within {check.timeout_s:g} s, "
             f"{check.failures} times in a row, and was killed"),
            None,
        )
    if stats.pids_max_hits and rc != 0:
        return (
            State.FAILED,
            (f"process limit: the sandbox tried to run more than {limits.pids} processes and threads"),
            "process",
        )
    if sig == signal.SIGXFSZ or (rc != 0 and disk_full) or killed_for == "disk":
        return (
            State.FAILED,
            (f"disk limit: the sandbox filled its {limits.disk_mib} MiB of disk "
             + ("(the environment it builds)" if killed_for == "disk" else "(/scratch and /tmp)")),
            "disk",
        )
    if sig == signal.SIGXCPU:
        return State.FAILED, f"cpu time limit: the sandbox used more than {limits.cpu_time_s} s of CPU", "cpu time"
    if killed_for == "time":
        return State.FAILED, f"time limit: the run took longer than {spec.wall_time_s:g} s and was stopped", "time"
    if rc == 0:
        return State.EXITED, None, None
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return State.FAILED, f"killed by {name}", None
    return State.FAILED, f"exited with code {rc}", None


async def _probe(path: Path, uid: int | None, check: HealthCheck) -> bool:
    """One health check: ``GET check.path`` over the replica's socket answers 200 in time.

    The socket directory is the sandbox's own, so only a socket its uid created is
    connected to: connect() follows symlinks, and this runs as root."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != uid:
        return False
    try:
        async with asyncio.timeout(check.timeout_s):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(f"GET {check.path} HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n".encode())
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    parts = status_line.split(b" ", 2)
    return len(parts) >= 2 and parts[1] == b"200"


# -- the supervisor -----------------------------------------------------------


class Supervisor:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.root = config.root
        self.sandboxes: dict[str, Sandbox] = {}
        self.cgroups = Cgroups(config.cgroup_parent, config.instance)
        self.bwrap_ok, self.bwrap_message = False, "not checked yet"
        self.server: asyncio.AbstractServer | None = None
        self._index_hosts: frozenset[str] | None = None

    # lifecycle

    def prepare(self) -> None:
        if os.geteuid() != 0:
            raise SystemExit("the sandbox supervisor must run as root: it switches to sandbox uids and creates cgroups")
        for sub, mode in (("", 0o711), ("run", 0o711), ("state", 0o700), ("logs", 0o700)):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
        longest = self.root / "run" / "sb000000000000.63" / "sock" / "server.sock"
        if len(str(longest)) > 107:
            raise SystemExit(f"PODIUM_VAR_DIR is too long for unix socket paths ({longest})")
        _become_subreaper()
        self.uids = claim_uids(self.config)
        self.bwrap_ok, self.bwrap_message = check_bwrap(self.config, self.uids.check_uid)
        (log.info if self.bwrap_ok else log.error)("bubblewrap: %s", self.bwrap_message)
        self._sweep()

    def _sweep(self) -> None:
        """Remove whatever replicas of an earlier supervisor left behind."""
        for leaf in self.cgroups.leaves():
            self.cgroups.destroy(leaf)
        run = self.root / "run"
        for mount in _mounts_under(run):
            _umount(mount)
        for child in run.iterdir():
            shutil.rmtree(child, ignore_errors=True)

    async def recover(self) -> None:
        for path in sorted((self.root / "state").glob("*.json")):
            try:
                sandbox = Sandbox.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, ValidationError, KeyError) as exc:
                log.error("ignoring unreadable sandbox state %s: %s", path, exc)
                continue
            self.sandboxes[sandbox.id] = sandbox
            if sandbox.state().done:
                continue
            self._open_log(sandbox)
            for replica in sandbox.replicas:
                if replica.state.done:
                    continue
                if sandbox.desired == "running" and sandbox.spec.restarts_on_crash:
                    self._log(sandbox, replica.index, "system", "the sandbox supervisor restarted; starting again")
                    await self._launch(sandbox, replica)
                else:
                    replica.state = State.STOPPED if sandbox.desired == "stopped" else State.FAILED
                    replica.reason = replica.reason or "interrupted: the sandbox supervisor restarted while it ran"
            await self._changed(sandbox)

    async def serve(self) -> None:
        self.prepare()
        await self.recover()
        path = self.config.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old_umask = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._handle, path=str(path), limit=MAX_LINE)
        finally:
            os.umask(old_umask)
        log.info("sandbox supervisor listening on %s (%s)", path, self.cgroups.describe())
        reaper = asyncio.create_task(self._reap_forever())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with self.server:
            await stop.wait()
        reaper.cancel()
        await self.shutdown()

    def _tracked_pids(self) -> set[int]:
        return {r.proc.pid for s in self.sandboxes.values() for r in s.replicas if r.proc is not None}

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            _reap_orphans(self._tracked_pids())

    async def shutdown(self) -> None:
        """Kill every replica now (their persisted state is kept, so servers come
        back when the supervisor starts again)."""
        for sandbox in self.sandboxes.values():
            for replica in sandbox.replicas:
                if replica.proc is not None and replica.run_dir is not None:
                    replica.killed_for = "shutdown"
                    self.cgroups.signal_all(replica.run_dir.name, signal.SIGKILL)
                    with contextlib.suppress(ProcessLookupError):
                        replica.proc.kill()
        waiters = [r.waiter for s in self.sandboxes.values() for r in s.replicas if r.waiter]
        if waiters:
            await asyncio.wait(waiters, timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.config.socket_path.unlink()
        self.cgroups.remove_instance()

    # persistence and logs

    def _persist(self, sandbox: Sandbox) -> None:
        path = self.root / "state" / f"{sandbox.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sandbox.to_json()))
        tmp.replace(path)

    async def _changed(self, sandbox: Sandbox) -> None:
        if sandbox.state().done and sandbox.finished_at is None:
            sandbox.finished_at = _now()
        self._persist(sandbox)
        self._wake(sandbox)

    def _wake(self, sandbox: Sandbox) -> None:
        """Wake every log follower of ``sandbox``."""
        if sandbox.wake is not None and not sandbox.wake.done():
            sandbox.wake.set_result(None)
        sandbox.wake = None

    async def _wait_change(self, sandbox: Sandbox, timeout: float) -> None:
        if sandbox.wake is None:
            sandbox.wake = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sandbox.wake), timeout)

    def _log_path(self, sandbox_id: str) -> Path:
        return self.root / "logs" / f"{sandbox_id}.jsonl"

    def _open_log(self, sandbox: Sandbox) -> None:
        path = self._log_path(sandbox.id)
        sandbox.log_file = open(path, "ab")  # noqa: SIM115 - lives as long as the sandbox
        sandbox.log_bytes = path.stat().st_size

    def _log(self, sandbox: Sandbox, replica: int, stream: str, text: str) -> None:
        if sandbox.log_file is None:
            return
        if sandbox.log_bytes > self.config.log_max_bytes:
            return
        line = encode({"time": _now().isoformat(), "stream": stream, "replica": replica, "text": text})
        sandbox.log_bytes += len(line)
        if sandbox.log_bytes > self.config.log_max_bytes:
            line = encode(
                {
                    "time": _now().isoformat(),
                    "stream": "system",
                    "replica": replica,
                    "text": f"log limit reached ({self.config.log_max_bytes} bytes); output dropped",
                }
            )
        sandbox.log_file.write(line)
        sandbox.log_file.flush()
        self._wake(sandbox)

    async def _pump(self, sandbox: Sandbox, replica: int, stream: asyncio.StreamReader, name: str) -> None:
        pending = b""
        while True:
            chunk = await stream.read(READ_CHUNK)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            while len(pending) > LINE_MAX:
                lines.append(pending[:LINE_MAX])
                pending = pending[LINE_MAX:]
            for raw in lines:
                self._log(sandbox, replica, name, raw.decode("utf-8", "replace"))
        if pending:
            self._log(sandbox, replica, name, pending.decode("utf-8", "replace"))

    # starting replicas

    def _check_spec(self, spec: SandboxSpec) -> Path | None:
        if not self.bwrap_ok:
            raise SandboxUnavailable(f"sandboxes are disabled on this host: {self.bwrap_message}")
        if spec.network == "index" and spec.purpose == "build":
            pass  # the index proxy: only the package index's hosts (sandbox.index_proxy)
        elif spec.network != "none":
            raise SpecNotSupported(
                "the local executor cannot give a sandbox outbound network without also exposing this "
                "host's services; run it on the nomad executor, or with network 'none'"
            )
        for label, path in (
            ("code_dir", spec.code_dir),
            ("artifact_dir", spec.artifact_dir),
            ("environment", spec.environment),
            ("output_dir", spec.output_dir),
            ("cache_dir", spec.cache_dir),
            *(("read_only_paths", path) for path in spec.read_only_paths),
        ):
            if path is not None and (problem := unreachable_reason(path)):
                raise SandboxError(f"{label} cannot be mounted into the sandbox: {problem}")
        prefix = _venv_python_prefix(spec.environment) if spec.environment else None
        if prefix is not None and (problem := unreachable_reason(prefix)):
            raise SandboxError(f"the environment's Python cannot be mounted into the sandbox: {problem}")
        return prefix

    def _allocate_gpus(self, spec: SandboxSpec) -> list[list[gpu_devices.Gpu]]:
        if not spec.resources.gpus:
            return [[] for _ in range(spec.replicas)]
        present = gpu_devices.discover(self.config.dev_dir)
        in_use = {i for s in self.sandboxes.values() for r in s.replicas if r.state == State.RUNNING for i in r.gpus}
        total = spec.resources.gpus * spec.replicas
        try:
            chosen = gpu_devices.allocate(total, spec.resources.gpu, present, in_use)
        except ResourceUnavailable as exc:
            if spec.replicas > 1:
                raise ResourceUnavailable(f"{spec.replicas} replicas x {spec.resources.gpus} GPUs: {exc}") from None
            raise
        per = spec.resources.gpus
        return [chosen[i * per : (i + 1) * per] for i in range(spec.replicas)]

    def _free_uid(self) -> int:
        used = {r.uid for s in self.sandboxes.values() for r in s.replicas if r.uid is not None}
        for uid in self.uids.usable:
            if uid not in used:
                return uid
        raise ResourceUnavailable(f"all {self.config.uid_count} sandbox uids are in use")

    async def op_start(self, spec: dict[str, Any]) -> dict[str, Any]:
        parsed = SandboxSpec.model_validate(spec)
        prefix = self._check_spec(parsed)
        gpu_plan = self._allocate_gpus(parsed)
        sandbox = Sandbox(
            id="sb" + secrets.token_hex(6), spec=parsed, replicas=[Replica(index=i) for i in range(parsed.replicas)]
        )
        self.sandboxes[sandbox.id] = sandbox
        self._open_log(sandbox)
        for replica, chosen in zip(sandbox.replicas, gpu_plan, strict=True):
            replica.gpus = [g.index for g in chosen]
            await self._launch(sandbox, replica, prefix=prefix, gpus=chosen)
        await self._changed(sandbox)
        return {"id": sandbox.id}

    async def _launch(
        self,
        sandbox: Sandbox,
        replica: Replica,
        prefix: Path | None = None,
        gpus: list[gpu_devices.Gpu] | None = None,
    ) -> None:
        spec = sandbox.spec
        if gpus is None and replica.gpus:
            by_index = {g.index: g for g in gpu_devices.discover(self.config.dev_dir)}
            gpus = [by_index[i] for i in replica.gpus if i in by_index]
        if prefix is None and spec.environment:
            prefix = _venv_python_prefix(spec.environment)
        replica.killed_for = None
        replica.exit_code = replica.reason = replica.limit = None
        try:
            plan = self._prepare_replica(sandbox, replica, prefix, gpus or [])
            if spec.purpose == "build":
                await self._start_index_proxy(sandbox, replica, plan)
            procs, warnings = self.cgroups.create(
                plan.run_dir.name,
                memory_bytes=spec.resources.memory_mib * 1024 * 1024,
                pids=spec.limits.pids,
                cpu=spec.resources.cpu,
            )
            sandbox.warnings = sorted(set(sandbox.warnings) | set(warnings))
            filter_fd = seccomp.open_program()
            try:
                args = profile.argv(plan, bwrap=self.config.bwrap, setpriv=self.config.setpriv, seccomp_fd=filter_fd)
                proc = await asyncio.create_subprocess_exec(
                    *args,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                    close_fds=True,
                    pass_fds=(filter_fd,),
                    start_new_session=True,
                    preexec_fn=lambda: _enter_sandbox_cgroup(procs, self._rlimits(spec)),
                )
            finally:
                os.close(filter_fd)
        except (OSError, SandboxError) as exc:
            self._cleanup(replica)
            replica.state, replica.reason = State.FAILED, f"could not start the sandbox: {exc}"
            self._log(sandbox, replica.index, "system", replica.reason)
            return
        replica.proc = proc
        replica.state = State.RUNNING
        replica.started_mono = asyncio.get_running_loop().time()
        wall = spec.wall_time_s
        if wall is not None:
            replica.timer = asyncio.get_running_loop().call_later(wall, self._time_up, sandbox, replica)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(self._pump(sandbox, replica.index, proc.stdout, "stdout")),
            asyncio.create_task(self._pump(sandbox, replica.index, proc.stderr, "stderr")),
        ]
        replica.waiter = asyncio.create_task(self._watch(sandbox, replica, proc, pumps))
        if spec.output_dir is not None:
            replica.disk_watch = asyncio.create_task(self._watch_output(sandbox, replica, spec.output_dir))
        if spec.purpose == "server":
            replica.prober = asyncio.create_task(self._probe_forever(sandbox, replica, proc))

    async def _start_index_proxy(self, sandbox: Sandbox, replica: Replica, plan: profile.ReplicaPlan) -> None:
        if self._index_hosts is None:
            from sandbox.environments import read_pip_config

            self._index_hosts = allowed_hosts(read_pip_config(), os.environ.get("PODIUM_BUILD_INDEX_HOSTS", ""))
        replica.proxy = IndexProxy(self._index_hosts, lambda text: self._log(sandbox, replica.index, "system", text))
        await replica.proxy.start(str(plan.socket_dir / "index-proxy.sock"), plan.uid)

    async def _watch_output(self, sandbox: Sandbox, replica: Replica, output: Path) -> None:
        """A build's environment is on the host's disk, not on its scratch tmpfs: its size is checked
        every second and the build is stopped past the disk limit."""
        limit = sandbox.spec.limits.disk_mib * 1024 * 1024
        while replica.proc is not None:
            await asyncio.sleep(1.0)
            used = await asyncio.to_thread(_tree_size, output)
            if used > limit and replica.proc is not None and replica.run_dir is not None:
                replica.killed_for = "disk"
                self._log(sandbox, replica.index, "system", f"the environment grew past {limit // 2**20} MiB")
                with contextlib.suppress(ProcessLookupError):
                    replica.proc.kill()
                self.cgroups.signal_all(replica.run_dir.name, signal.SIGKILL)
                return

    async def _probe_forever(self, sandbox: Sandbox, replica: Replica, proc: asyncio.subprocess.Process) -> None:
        """Kill a server replica that stops answering its health check (see ``HealthCheck``)."""
        check = sandbox.spec.health
        loop = asyncio.get_running_loop()
        started, answered, misses = loop.time(), False, 0
        while True:
            await asyncio.sleep(check.interval_s)
            if replica.proc is not proc or replica.run_dir is None or replica.killed_for:
                return
            if await _probe(replica.run_dir / "sock" / "server.sock", replica.uid, check):
                answered, misses = True, 0
                continue
            if not answered and loop.time() - started < check.start_s:
                continue
            misses += 1
            if misses >= check.failures:
                replica.killed_for = "health"
                self._log(sandbox, replica.index, "system",
                          f"health check: no answer to GET {check.path} within {check.timeout_s:g} s, "
                          f"{misses} times in a row; killing the replica")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                self.cgroups.signal_all(replica.run_dir.name, signal.SIGKILL)
                return

    def _rlimits(self, spec: SandboxSpec) -> list[tuple[int, int, int]]:
        disk = spec.limits.disk_mib * 1024 * 1024
        limits = [
            (resource.RLIMIT_NOFILE, spec.limits.nofile, spec.limits.nofile),
            (resource.RLIMIT_FSIZE, disk, disk),
            (resource.RLIMIT_CORE, 0, 0),
        ]
        if spec.limits.cpu_time_s:
            limits.append((resource.RLIMIT_CPU, spec.limits.cpu_time_s, spec.limits.cpu_time_s + 5))
        return limits

    def _prepare_replica(
        self, sandbox: Sandbox, replica: Replica, prefix: Path | None, gpus: list[gpu_devices.Gpu]
    ) -> profile.ReplicaPlan:
        spec = sandbox.spec
        uid = self.uids.build_uid(str(spec.cache_dir or spec.output_dir)) if spec.purpose == "build" \
            else self._free_uid()
        replica.uid = uid
        run_dir = self.root / "run" / f"{sandbox.id}.{replica.index}"
        replica.run_dir = run_dir
        run_dir.mkdir(mode=0o711)
        scratch = run_dir / "scratch"
        scratch.mkdir(mode=0o700)
        disk = sandbox.spec.limits.disk_mib * 1024 * 1024
        try:
            _mount_tmpfs(scratch, disk, uid)
        except OSError as exc:
            note = f"disk limit enforced per file only: cannot mount a tmpfs here ({exc.strerror})"
            sandbox.warnings = sorted(set(sandbox.warnings) | {note})
        for sub in ("home", "tmp"):
            (scratch / sub).mkdir(mode=0o700)
            os.chown(scratch / sub, uid, uid)
        os.chown(scratch, uid, uid)
        sock = run_dir / "sock"
        sock.mkdir(mode=0o755)
        os.chown(sock, uid, uid)
        if spec.purpose == "build":
            _give_build_dirs(spec, uid)
        passwd, group = profile.passwd_files(uid)
        (run_dir / "passwd").write_text(passwd)
        (run_dir / "group").write_text(group)
        return profile.ReplicaPlan(
            sandbox_id=sandbox.id,
            index=replica.index,
            uid=uid,
            run_dir=run_dir,
            spec=sandbox.spec,
            python_prefix=prefix,
            gpu_devices=[g.device for g in gpus],
            gpu_control=gpu_devices.control_nodes(self.config.dev_dir) if gpus else [],
        )

    def _time_up(self, sandbox: Sandbox, replica: Replica) -> None:
        if replica.proc is None or replica.run_dir is None:
            return
        replica.killed_for = replica.killed_for or "time"
        self._log(sandbox, replica.index, "system", f"time limit of {sandbox.spec.wall_time_s:g} s reached")
        with contextlib.suppress(ProcessLookupError):
            replica.proc.kill()
        self.cgroups.signal_all(replica.run_dir.name, signal.SIGKILL)

    async def _watch(
        self, sandbox: Sandbox, replica: Replica, proc: asyncio.subprocess.Process, pumps: list[asyncio.Task[None]]
    ) -> None:
        rc = await proc.wait()
        rc = 128 - rc if rc < 0 else rc  # the outer bwrap itself was killed: report it like bwrap does
        await asyncio.wait(pumps, timeout=2)
        assert replica.run_dir is not None
        name = replica.run_dir.name
        stats = self.cgroups.stats(name)
        disk_full = self._disk_full(replica.run_dir / "scratch")
        state, reason, limit = explain_exit(rc, stats, replica.killed_for, disk_full, sandbox.spec)
        killed_for = replica.killed_for
        self._cleanup(replica)
        if sandbox.spec.output_dir is not None and state == State.EXITED:
            await asyncio.to_thread(_seal, sandbox.spec.output_dir)
        replica.exit_code, replica.reason, replica.limit = rc, reason, limit
        if killed_for not in ("stop", "shutdown"):
            replica.last_exit = reason or f"exited with code {rc}"
        if reason:
            self._log(sandbox, replica.index, "system", reason)
        if killed_for == "shutdown":
            return
        if sandbox.desired == "running" and sandbox.spec.restarts_on_crash and killed_for != "stop":
            self._schedule_restart(sandbox, replica, reason or "exited with code 0")
        else:
            replica.state = state
        await self._changed(sandbox)

    def _disk_full(self, scratch: Path) -> bool:
        try:
            fs = os.statvfs(scratch)
        except OSError:
            return False
        free = fs.f_bavail * fs.f_frsize
        return free < max(256 * 1024, fs.f_blocks * fs.f_frsize // 50)

    def _schedule_restart(self, sandbox: Sandbox, replica: Replica, reason: str) -> None:
        policy = sandbox.spec.restart
        loop = asyncio.get_running_loop()
        if loop.time() - replica.started_mono >= policy.reset_after_s:
            replica.crashes = 0
        replica.crashes += 1
        if replica.crashes > policy.attempts:
            replica.state = State.FAILED
            replica.reason = f"{reason}; gave up after {policy.attempts} restarts"
            self._log(sandbox, replica.index, "system", replica.reason)
            return
        delay = min(policy.backoff_s * 2 ** (replica.crashes - 1), policy.max_backoff_s)
        replica.state = State.RESTARTING
        self._log(sandbox, replica.index, "system", f"{reason}; restarting in {delay:g} s")

        async def restart() -> None:
            await asyncio.sleep(delay)
            if sandbox.desired == "running" and replica.state == State.RESTARTING:
                replica.restarts += 1
                await self._launch(sandbox, replica)
                await self._changed(sandbox)

        replica.pending = loop.create_task(restart())

    def _cleanup(self, replica: Replica) -> None:
        """Kill what is left, drop the cgroup, wipe scratch, free uid and GPUs."""
        if replica.timer is not None:
            replica.timer.cancel()
            replica.timer = None
        if replica.prober is not None and replica.prober is not asyncio.current_task():
            replica.prober.cancel()
        replica.prober = None
        run_dir = replica.run_dir
        if run_dir is not None:
            self.cgroups.destroy(run_dir.name)
            for mount in _mounts_under(run_dir):
                _umount(mount)
            shutil.rmtree(run_dir, ignore_errors=True)
        if replica.proxy is not None:
            replica.proxy.close()
            replica.proxy = None
        if replica.disk_watch is not None:
            replica.disk_watch.cancel()
            replica.disk_watch = None
        replica.proc = None
        replica.run_dir = None
        replica.uid = None

    # operations

    def _get(self, sandbox_id: str) -> Sandbox:
        try:
            return self.sandboxes[sandbox_id]
        except KeyError:
            raise SandboxNotFound(f"no sandbox {sandbox_id!r}") from None

    async def op_poll(self, id: str) -> dict[str, Any]:
        return self._get(id).status().model_dump(mode="json")

    async def op_addresses(self, id: str) -> list[str]:
        sandbox = self._get(id)
        return [a for r in sandbox.replicas if (a := sandbox.address(r))]

    async def op_stop(self, id: str, grace_s: float = 5.0) -> dict[str, Any]:
        sandbox = self._get(id)
        if sandbox.state().done:
            return sandbox.status().model_dump(mode="json")
        sandbox.desired = "stopped"
        running = []
        for replica in sandbox.replicas:
            if replica.pending is not None:
                replica.pending.cancel()
            if replica.proc is not None and replica.run_dir is not None:
                replica.killed_for = "stop"
                self.cgroups.signal_all(replica.run_dir.name, signal.SIGTERM, spare=replica.proc.pid)
                running.append(replica)
            elif not replica.state.done:
                replica.state, replica.reason = State.STOPPED, "stopped"
        waiters = [r.waiter for r in running if r.waiter]
        if waiters:
            _, late = await asyncio.wait(waiters, timeout=grace_s)
            for replica in running:
                if replica.waiter in late and replica.proc is not None and replica.run_dir is not None:
                    with contextlib.suppress(ProcessLookupError):
                        replica.proc.kill()
                    self.cgroups.signal_all(replica.run_dir.name, signal.SIGKILL)
            if late:
                await asyncio.wait(late, timeout=10)
        await self._changed(sandbox)
        return sandbox.status().model_dump(mode="json")

    async def op_ping(self) -> dict[str, Any]:
        live = sum(1 for s in self.sandboxes.values() if not s.state().done)
        return {
            "bwrap_ok": self.bwrap_ok,
            "bwrap": self.bwrap_message,
            "cgroups": self.cgroups.describe(),
            "running": live,
            "pid": os.getpid(),
            "uids": [self.uids.base, self.uids.base + self.uids.count],
        }

    async def op_list(self) -> list[dict[str, Any]]:
        return [s.status().model_dump(mode="json") for s in self.sandboxes.values()]

    async def _stream_logs(
        self, writer: asyncio.StreamWriter, id: str, follow: bool = False, tail: int | None = None
    ) -> None:
        sandbox = self._get(id)
        path = self._log_path(id)
        with open(path, "rb") as handle:
            lines: Any = handle.readlines()
            if tail is not None:
                lines = deque(lines, maxlen=tail) if tail > 0 else []
            for raw in lines:
                if raw.endswith(b"\n"):
                    writer.write(b'{"line":' + raw[:-1] + b"}\n")
            await writer.drain()
            position = handle.tell()
            while follow:
                done = sandbox.state().done
                if not done:
                    await self._wait_change(sandbox, 1.0)
                handle.seek(position)
                chunk = handle.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]
                position += len(complete)
                for raw in complete.splitlines():
                    writer.write(b'{"line":' + raw + b"}\n")
                await writer.drain()
                if done and not complete:
                    break
        writer.write(encode({"end": True}))
        await writer.drain()

    async def _dispatch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any] | None:
        try:
            request = json.loads(await reader.readline())
            op = request.pop("op")
            if op == "logs":
                await self._stream_logs(writer, **request)
                return None
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                raise SandboxError(f"unknown operation {op!r}")
            return {"ok": True, "result": await handler(**request)}
        except SandboxError as exc:
            return {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}
        except ValidationError as exc:
            return {"ok": False, "error": {"type": "SandboxError", "message": f"invalid sandbox spec: {exc}"}}
        except (ValueError, TypeError, KeyError) as exc:
            return {"ok": False, "error": {"type": "SandboxError", "message": f"bad request: {exc!r}"}}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._dispatch(reader, writer)
            if reply is not None:
                writer.write(encode(reply))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # keep serving whatever one request did
            log.exception("supervisor request failed")
        finally:
            writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check bubblewrap and cgroups, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = SandboxConfig.from_env()
    if args.check:
        ok, message = check_bwrap(config, claim_uids(config).check_uid)
        print(message)
        raise SystemExit(0 if ok else 1)
    asyncio.run(Supervisor(config).serve())


if __name__ == "__main__":
    main()
