"""Sandbox start overhead over the same bare process (target: <= 10 ms added).

Run as root: ``.venv/bin/python bench/sandbox_start.py [runs]``. Starts its own
supervisor on a scratch var dir and prints three figures for ``/bin/true``:

1. bare: fork/exec/wait of the process itself;
2. bwrap profile: the same process under setpriv + bubblewrap with Podium's
   full profile (namespaces, read-only binds, remount), without supervisor;
3. executor: ``LocalExecutor.start`` -> status ``exited`` through the supervisor
   (RPC, uid, tmpfs scratch, cgroup, rlimits, log pumps, cleanup);
4. time to the user's first instruction: from the call that starts it until
   ``/bin/date +%s%N`` inside prints the (host-wide) realtime clock, for a bare
   process and through the executor. This is the start overhead a caller waits
   for; figure 3 also counts the teardown after the command ends.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import SandboxSpec  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.executors.local import LocalExecutor  # noqa: E402
from sandbox.profile import ReplicaPlan, argv, passwd_files  # noqa: E402
from sandbox.protocol import Client  # noqa: E402

SPEC = SandboxSpec(workspace="bench", name="true", purpose="oneshot", command=["/bin/true"])


def figures(label: str, samples: list[float], baseline: float | None = None) -> float:
    ms = sorted(s * 1000 for s in samples)
    median = statistics.median(ms)
    p90 = ms[int(len(ms) * 0.9) - 1]
    added = f"  (+{median - baseline:.2f} ms over bare)" if baseline is not None else ""
    print(f"{label:<34} median {median:7.2f} ms   p90 {p90:7.2f} ms{added}")
    return median


def bare(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        out.append(time.perf_counter() - started)
    return out


def profile_only(runs: int, root: Path) -> list[float]:
    run_dir = root / "bench-run"
    for sub in ("scratch/home", "scratch/tmp", "sock"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    passwd, group = passwd_files(299_999)
    (run_dir / "passwd").write_text(passwd)
    (run_dir / "group").write_text(group)
    for path in [run_dir, *run_dir.rglob("*")]:
        os.chown(path, 299_999, 299_999)
        path.chmod(0o755)
    plan = ReplicaPlan(sandbox_id="bench", index=0, uid=299_999, run_dir=run_dir, spec=SPEC)
    command = argv(plan, bwrap="bwrap", setpriv="setpriv")
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True)
        out.append(time.perf_counter() - started)
    return out


def through_executor(runs: int, executor: LocalExecutor) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        handle = executor.start(SPEC)
        while not executor.poll(handle).done:
            time.sleep(0.0005)
        out.append(time.perf_counter() - started)
    return out


DATE = ["/bin/date", "+%s%N"]


def bare_first_instruction(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.time_ns()
        printed = int(subprocess.run(DATE, check=True, capture_output=True, text=True).stdout)
        out.append((printed - started) / 1e9)
    return out


def executor_first_instruction(runs: int, executor: LocalExecutor) -> list[float]:
    spec = SPEC.model_copy(update={"command": DATE})
    out = []
    for _ in range(runs):
        started = time.time_ns()
        handle = executor.start(spec)
        while not executor.poll(handle).done:
            time.sleep(0.0005)
        printed = next(int(line.text) for line in executor.logs(handle) if line.stream == "stdout")
        out.append((printed - started) / 1e9)
    return out


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    var = Path(tempfile.mkdtemp(prefix="podium-bench-", dir="/tmp"))
    var.chmod(0o755)
    config = SandboxConfig(var_dir=var, uid_count=100)
    env = {**os.environ, "PODIUM_VAR_DIR": str(var), "PODIUM_SANDBOX_UID_COUNT": "100"}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "sandbox.supervisor"],
        env=env,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                Client(config.socket_path, timeout=1).call("ping")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        executor = LocalExecutor(config=config)
        through_executor(10, executor)  # warm up
        print(f"{runs} runs of /bin/true on {os.cpu_count()} CPUs")
        base = figures("bare process", bare(runs))
        figures("setpriv + bwrap profile", profile_only(runs, var / "sandbox"), base)
        figures("LocalExecutor start -> exited", through_executor(runs, executor), base)
        first = figures("bare: start -> first instruction", bare_first_instruction(runs))
        figures("executor: start -> first instruction", executor_first_instruction(runs, executor), first)
    finally:
        supervisor.terminate()
        supervisor.wait()
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
