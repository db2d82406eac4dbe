"""``python -m sandbox.nomad_check``: can the configured Nomad cluster run Podium?

Registers one tiny job per purpose (``oneshot``, ``server``, ``kernel``) through
the Nomad executor, with the same settings as Podium (``NOMAD_ADDR``,
``NOMAD_TOKEN`` and the variables in docs/sandbox.md), and prints each step as it
happens: registered, placed, running, healthy (reachable at an address whose
checks pass), logs, stopped, and for the one-shot run that every capability set
is 0 and that network ``none`` leaves only ``lo``. Exits 1 when a step fails, so
an operator knows within a minute whether clients are set up as
``deploy/nomad/`` describes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from sandbox.errors import SandboxError
from sandbox.executors.nomad import NomadConfig, NomadExecutor
from sandbox.spec import SandboxHandle, SandboxSpec, State

WORKSPACE = "nomad-check"
PROBE = "grep ^Cap /proc/self/status; echo net: $(ls /sys/class/net)"
SERVE = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        print('asked', self.path, flush=True)\n"
    "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "print('listening', flush=True)\n"
    "http.server.HTTPServer(('0.0.0.0', int(os.environ['PODIUM_LISTEN'].rsplit(':', 1)[1])), H).serve_forever()\n"
)


class Report:
    """Prints one line per step and remembers whether any failed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False
        self.started = time.monotonic()

    def step(self, purpose: str, name: str, ok: bool, detail: str = "") -> bool:
        mark = "ok  " if ok else "FAIL"
        elapsed = time.monotonic() - self.started
        self.out.write(f"{elapsed:6.1f}s  {purpose:8} {mark} {name}{': ' + detail if detail else ''}\n")
        self.out.flush()
        self.failed |= not ok
        return ok


def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def check_oneshot(executor: NomadExecutor, report: Report, python: str, timeout: float) -> None:
    spec = SandboxSpec(workspace=WORKSPACE, name="probe", purpose="oneshot", command=["/bin/sh", "-c", PROBE])
    handle = _register(executor, report, spec)
    if handle is None:
        return
    status = executor.wait(handle, timeout=timeout)
    if not report.step("oneshot", "ran to the end", status.state == State.EXITED, status.reason or status.state):
        return
    lines = [line.text for line in executor.logs(handle) if line.stream == "stdout"]
    report.step("oneshot", "logs", bool(lines), f"{len(lines)} lines")
    caps = {k: v.strip() for k, v in (line.split(":", 1) for line in lines if line.startswith("Cap"))}
    raised = {name: value for name, value in caps.items() if int(value or "0", 16)}
    report.step(
        "oneshot", "capabilities 0", bool(caps) and not raised, ", ".join(f"{k} {v}" for k, v in raised.items())
    )
    net = next((line.removeprefix("net:").split() for line in lines if line.startswith("net:")), [])
    report.step("oneshot", "network none: only lo", net == ["lo"], " ".join(net))


def check_reachable(executor: NomadExecutor, report: Report, purpose: str, python: str, timeout: float) -> None:
    spec = SandboxSpec.model_validate(
        {"workspace": WORKSPACE, "name": f"probe-{purpose}", "purpose": purpose, "command": [python, "-c", SERVE]}
    )
    handle = _register(executor, report, spec)
    if handle is None:
        return
    try:
        status = executor.wait(handle, timeout=timeout, until=frozenset({State.RUNNING}))
        if not report.step(purpose, "running", status.state == State.RUNNING, status.reason or status.state):
            return
        healthy = _until(lambda: bool(executor.addresses(handle)), timeout)
        report.step(purpose, "healthy (checks pass)", healthy, ", ".join(executor.addresses(handle)))
        got_logs = _until(lambda: any(line.text == "listening" for line in executor.logs(handle)), timeout)
        report.step(purpose, "logs", got_logs)
    finally:
        stopped = executor.stop(handle, grace_s=5)
        report.step(purpose, "stopped", stopped.state == State.STOPPED, stopped.state)


def _register(executor: NomadExecutor, report: Report, spec: SandboxSpec) -> SandboxHandle | None:
    try:
        handle = executor.start(spec)
    except SandboxError as exc:
        report.step(spec.purpose, "registered", False, str(exc))
        return None
    report.step(spec.purpose, "registered", True, f"job {handle.id} in {handle.state['namespace']}")
    placed = _until(lambda: bool(executor._allocations(handle)), 30)
    report.step(spec.purpose, "placed", placed)
    return handle if placed else None


def run(executor: NomadExecutor, out: TextIO, python: str = "/usr/bin/python3", timeout: float = 60) -> bool:
    """Run every check; True when all passed."""
    report = Report(out)
    ok, message = executor.health()
    if not report.step("agent", "answers", ok, message):
        return False
    check_oneshot(executor, report, python, timeout)
    for purpose in ("server", "kernel"):
        check_reachable(executor, report, purpose, python, timeout)
    return not report.failed


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sandbox.nomad_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="/usr/bin/python3", help="the interpreter on the clients")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for each step")
    args = parser.parse_args(argv)
    sys.exit(0 if run(NomadExecutor(NomadConfig.from_env()), sys.stdout, args.python, args.timeout) else 1)


if __name__ == "__main__":
    main()
