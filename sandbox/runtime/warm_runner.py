"""Podium's warm test runner: a pre-warmed interpreter that forks one child per test run.

Runs INSIDE a long-running sandbox (one per member, workspace, environment and set
of imports; see ``webapp/ide/warm.py``) with the Python of the model's environment,
next to ``test_harness.py`` and ``model_server.py``. Standard library only.

Why it exists: a test run in a fresh sandbox spends most of its time importing the
model's libraries (``import sklearn`` alone is 0.6-0.9 s), not running the user's
code. This process imports them once (``--preload``), then serves runs by
``fork()``: each child starts with the libraries already in memory, runs the same
harness a oneshot test uses, and exits. A child never returns to the parent, so one
run cannot change what the next one starts from (the children of one runner all
belong to the same member). The parent runs no user code: it imports the
environment's libraries and nothing from the bundle.

Protocol, on ``PODIUM_LISTEN`` (``unix:/path`` or ``tcp:HOST:PORT``), one request per
connection. The client sends one JSON line, then for a run the bundle:

Every request but the HTTP health check carries ``"token"``, the runner's secret
(``WARM_RUNNER_TOKEN`` at start, removed from the environment the runs inherit), so that
on a cluster nothing else that reaches the port can run code in the sandbox.

- ``{"op": "ping"}`` → ``{"ready": true, "preloaded": [...], "failed": {module: error},
  "preload_ms": float, "runs": int}``; an HTTP ``GET`` (any path; the health check Nomad's
  service registration makes) gets ``200 {"ready": true}``
- ``{"op": "run", "size": N, "sample_input": ..., "wall_time_s": T}`` followed by N
  bytes of a tar (plain or gzip) of the bundle (``model.py``, ``requirements.txt``,
  ``podium.json``, ...). The answer is JSON lines: ``{"stream": "stdout"|"stderr",
  "text": ..., "time": ISO}`` for each line the run prints (the harness's result
  line included, as in a oneshot run), and last ``{"exit": code, "signal": n|null,
  "limit": "time"|null, "reason": str|null}``.

If the client goes away, the run is killed; a run past ``wall_time_s`` is killed and
reported with ``"limit": "time"``; whatever a run started dies with it, even a process
that left its process group (the runner is a child subreaper and kills such orphans).
The exit frame is preceded by an empty line. Memory, processes and CPU are the sandbox's own
limits, shared by the runs in flight.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hmac
import importlib
import io
import json
import os
import select
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_HEADER = 8 << 20  # the header carries the sample input (up to 1 MiB of JSON)
MAX_BUNDLE = 512 << 20
REQUEST_TIMEOUT_S = 30.0
SEND_TIMEOUT_S = 10.0
LINE_MAX = 16384  # bytes of output in one line frame
PR_SET_CHILD_SUBREAPER = 36


def log(message: str) -> None:
    sys.stderr.write(f"[podium] {message}\n")
    sys.stderr.flush()


def now() -> str:
    return datetime.now(UTC).isoformat()


def preload(modules: list[str]) -> tuple[list[str], dict[str, str], float]:
    """Import each module; a module that fails is noted (the run that needs it will show the error).

    A name ending in ``?`` (``sklearn.datasets?``, from ``from sklearn import datasets``) is imported
    only if it is a module: when it is just a name inside its parent, it is skipped without a note.
    """
    started = time.perf_counter()
    loaded: list[str] = []
    failed: dict[str, str] = {}
    for entry in modules:
        name = entry.rstrip("?")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (entry.endswith("?") and exc.name == name):
                failed[name] = f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # noqa: BLE001 - any import failure is the user's to see in a run
            failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            loaded.append(name)
    return loaded, failed, (time.perf_counter() - started) * 1000


def listen(address: str) -> socket.socket:
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
    elif address.startswith("tcp:"):
        host, _, port = address[len("tcp:"):].rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or "0.0.0.0", int(port)))  # noqa: S104 - the sandbox's own allocated port
    else:
        raise SystemExit(f"PODIUM_LISTEN={address!r} must start with unix: or tcp:")
    sock.listen(64)
    return sock


def read_request(conn: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The header line and, for a run, its bundle bytes."""
    conn.settimeout(REQUEST_TIMEOUT_S)
    buffer = b""
    while b"\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("the connection closed before a request arrived")
        buffer += chunk
        if len(buffer) > MAX_HEADER and b"\n" not in buffer:
            raise ValueError("the request header is too long")
    line, _, rest = buffer.partition(b"\n")
    if line.startswith(b"GET "):  # an HTTP health check (Nomad's service check)
        return {"op": "http-health"}, b""
    header = json.loads(line)
    if not isinstance(header, dict):
        raise ValueError("the request header must be a JSON object")
    size = int(header.get("size") or 0)
    if not 0 <= size <= MAX_BUNDLE:
        raise ValueError(f"a bundle of {size} bytes is not accepted")
    chunks, received = [rest], len(rest)
    while received < size:
        chunk = conn.recv(min(1 << 20, size - received))
        if not chunk:
            raise ValueError("the connection closed before the whole bundle arrived")
        chunks.append(chunk)
        received += len(chunk)
    conn.settimeout(None)
    return header, b"".join(chunks)[:size]


def send(conn: socket.socket, message: dict[str, Any], lock: threading.Lock | None = None) -> None:
    data = (json.dumps(message, default=repr) + "\n").encode()
    try:
        if lock is None:
            conn.sendall(data)
        else:
            with lock:
                conn.sendall(data)
    except OSError:
        pass  # the client went away; the parent kills the run when it sees that


def extract(bundle: bytes, dest: str) -> None:
    """Unpack the bundle; only plain files and directories, only below ``dest``."""
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:*") as archive:
        for member in archive.getmembers():
            target = os.path.realpath(os.path.join(dest, member.name))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise ValueError(f"{member.name} is outside the bundle")
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            elif member.isfile():
                os.makedirs(os.path.dirname(target), exist_ok=True)
                source = archive.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(source, out)  # type: ignore[arg-type]
            else:
                raise ValueError(f"{member.name} is not a plain file")


def _pump(fd: int, stream: str, conn: socket.socket, lock: threading.Lock) -> None:
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        pending = b""
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            pieces = [line[i:i + LINE_MAX] for line in lines for i in range(0, max(len(line), 1), LINE_MAX)]
            while len(pending) > LINE_MAX:  # a line that never ends comes in pieces too
                pieces.append(pending[:LINE_MAX])
                pending = pending[LINE_MAX:]
            for piece in pieces:
                send(conn, {"stream": stream, "text": piece.decode(errors="replace"), "time": now()}, lock)
        if pending:
            send(conn, {"stream": stream, "text": pending.decode(errors="replace"), "time": now()}, lock)


def child(conn: socket.socket, header: dict[str, Any], bundle: bytes, workdir: str) -> int:
    """In the forked child: unpack into ``workdir`` (made and removed by the parent, so that a killed run
    leaves nothing behind), point stdout/stderr at the connection, run the harness."""
    os.setpgid(0, 0)  # its own group, so a kill reaches whatever the run started
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    lock = threading.Lock()
    pumps = []
    try:
        bundle_dir = os.path.join(workdir, "bundle")
        os.mkdir(bundle_dir)
        extract(bundle, bundle_dir)
        del bundle
        sample = os.path.join(workdir, "sample_input.json")
        with open(sample, "w") as handle:
            json.dump(header.get("sample_input"), handle)
        for stream, fd in (("stdout", 1), ("stderr", 2)):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            pump = threading.Thread(target=_pump, args=(read_end, stream, conn, lock), daemon=True)
            pump.start()
            pumps.append(pump)
        log("warm start: the libraries were imported before this run")
        import test_harness  # noqa: PLC0415 - preloaded by the parent, beside this file

        code = test_harness.main([bundle_dir, sample])
    except BaseException as exc:  # noqa: BLE001 - reported to the client, never raised into the parent's loop
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        send(conn, {"stream": "system", "text": f"podium: {type(exc).__name__}: {exc}", "time": now()}, lock)
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)  # closes the pipes' last write ends here, so the pumps see the end
        os.dup2(null, 2)
        for pump in pumps:
            pump.join(2.0)
    return code


@dataclass
class Run:
    pid: int
    conn: socket.socket
    deadline: float
    workdir: str
    limit: str | None = None
    killed_because: str | None = None
    started: float = field(default_factory=time.monotonic)


class Runner:
    def __init__(self, sock: socket.socket, info: dict[str, Any], token: str) -> None:
        self.sock = sock
        self.info = info
        self.token = token
        self.last_sweep = 0.0
        self.runs: dict[int, Run] = {}
        self.stopping = False

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while not self.stopping or self.runs:
            watched = [run.conn for run in self.runs.values()]
            if not self.stopping:
                watched.append(self.sock)
            try:
                readable, _, _ = select.select(watched, [], [], 0.1)
            except InterruptedError:
                readable = []
            for ready in readable:
                if ready is self.sock:
                    try:
                        self._accept()
                    except Exception as exc:  # noqa: BLE001 - one bad request never ends the runner
                        log(f"a request failed: {type(exc).__name__}: {exc}")
                else:
                    self._client_event(ready)
            self._reap()  # first, so a run that ended just at its deadline is not reported as over it
            self._enforce_deadlines()
            if time.monotonic() - self.last_sweep > 2.0:
                self._sweep()
        log("stopped")

    def _stop(self, _signum: int, _frame: Any) -> None:
        self.stopping = True
        for run in self.runs.values():
            self._kill(run, "the warm runner is stopping")

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        try:
            header, bundle = read_request(conn)
        except (OSError, ValueError) as exc:
            send(conn, {"error": f"bad request: {exc}"})
            conn.close()
            return
        if header.get("op") == "http-health":  # no token: it says only that the runner is up
            body = b'{"ready": true}'

            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            conn.close()
            return
        if not hmac.compare_digest(str(header.get("token", "")).encode(), self.token.encode()):
            send(conn, {"error": "bad request: a valid token is needed"})
            conn.close()
            return
        if header.get("op") == "ping":
            send(conn, {"ready": True, **self.info})
            conn.close()
            return
        if header.get("op") != "run":
            send(conn, {"error": f"unknown op {header.get('op')!r}"})
            conn.close()
            return
        try:
            wall = float(header.get("wall_time_s") or 120)
        except (TypeError, ValueError):
            send(conn, {"error": "bad request: wall_time_s must be a number"})
            conn.close()
            return
        self.info["runs"] += 1
        workdir = tempfile.mkdtemp(prefix="podium-run-")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never comes back into this loop
            code = 70
            try:
                self.sock.close()
                for other in self.runs.values():
                    other.conn.close()
                code = child(conn, header, bundle, workdir)
            finally:
                os._exit(code)
        del bundle
        self.runs[pid] = Run(pid=pid, conn=conn, deadline=time.monotonic() + wall, workdir=workdir)

    def _client_event(self, conn: socket.socket) -> None:
        """The client only ever closes its side during a run: that cancels the run."""
        run = next((r for r in self.runs.values() if r.conn is conn), None)
        if run is None:
            return
        try:
            data = conn.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if not data:
            self._kill(run, "the caller went away")

    def _kill(self, run: Run, why: str) -> None:
        if run.killed_because is None:
            run.killed_because = why
        for target in (-run.pid, run.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGKILL)

    def _enforce_deadlines(self) -> None:
        now_ = time.monotonic()
        for run in self.runs.values():
            if run.limit is None and now_ > run.deadline:
                run.limit = "time"
                self._kill(run, f"the run took longer than its wall-time limit of {run.deadline - run.started:.0f} s")

    def _reap(self) -> None:
        while self.runs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.runs.pop(pid, None)
            if run is None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # whatever the run left behind in its group goes with it
            code = os.waitstatus_to_exitcode(status)
            sig = -code if code < 0 else None
            reason = run.killed_because
            if reason is None and sig is not None:
                reason = f"the run was killed by signal {sig}" + (
                    "; it may have run out of memory" if sig == signal.SIGKILL else "")
            shutil.rmtree(run.workdir, ignore_errors=True)
            # A newline first: a frame the child was cut off in the middle of writing ends there, and the
            # client skips it rather than reading the exit frame as part of it.
            with contextlib.suppress(OSError):
                run.conn.settimeout(SEND_TIMEOUT_S)
                run.conn.sendall(b"\n")
            send(run.conn, {"exit": code, "signal": sig, "limit": run.limit, "reason": reason})
            run.conn.close()
            self._sweep()

    def _sweep(self) -> None:
        """Kill what escaped a finished run (a process that made its own session or group and outlived it).

        The runner is a child subreaper, so such orphans become its children; a child that is not a run,
        and not in a live run's process group, is one of them.
        """
        self.last_sweep = time.monotonic()
        me = os.getpid()
        live = set(self.runs)
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        for entry in entries:
            if not entry.isdigit() or int(entry) in live or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            ppid, pgid = int(fields[1]), int(fields[2])
            if ppid == me and pgid not in live:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve Podium test runs from a pre-warmed interpreter.")
    parser.add_argument("--preload", default="", help="comma-separated modules to import before serving")
    args = parser.parse_args(argv)
    address = os.environ.get("PODIUM_LISTEN")
    if not address:
        raise SystemExit("PODIUM_LISTEN is not set")
    token = os.environ.pop("WARM_RUNNER_TOKEN", "")  # out of the environment the runs inherit
    if not token:
        raise SystemExit("WARM_RUNNER_TOKEN is not set")
    with contextlib.suppress(OSError, AttributeError):  # Linux: orphans of runs become our children
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import model_server  # noqa: F401, PLC0415
    import test_harness  # noqa: F401, PLC0415 - the harness and model_server, imported once for every run

    modules = [m for m in args.preload.split(",") if m.strip()]
    loaded, failed, took = preload([m.strip() for m in modules])
    for name, error in failed.items():
        log(f"could not preload {name}: {error}")
    log(f"preloaded {len(loaded)} modules in {took:.0f} ms")
    sock = listen(address)
    log(f"listening on {address}")
    Runner(sock, {"preloaded": loaded, "failed": failed, "preload_ms": round(took, 1), "runs": 0}, token).serve()


if __name__ == "__main__":
    main()
