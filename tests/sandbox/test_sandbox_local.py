"""Local-executor behaviour beyond the shared contract: failing closed, outliving
a supervisor restart, GPUs, the bwrap profile, the spec and the executor table."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import sandboxes_possible, start_supervisor, stop_supervisor
from pydantic import ValidationError
from sandbox_helpers import oneshot, run

from sandbox import (
    EXECUTORS,
    GpuConstraints,
    Network,
    Resources,
    ResourceUnavailable,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
    SpecNotSupported,
    State,
    get_executor,
    profile,
)
from sandbox import gpus as gpu_devices
from sandbox.config import SandboxConfig
from sandbox.executors.local import LocalExecutor
from sandbox.executors.nomad import NomadExecutor


@pytest.fixture
def own_var() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="podium-own-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def needs_sandboxes() -> None:
    reason = sandboxes_possible()
    if reason:
        pytest.fail(f"this test needs real sandboxes: {reason}")


# -- failing closed -------------------------------------------------------------------


def test_it_fails_closed_when_bubblewrap_is_missing(own_var: Path) -> None:
    needs_sandboxes()
    config = SandboxConfig(var_dir=own_var, uid_count=100)
    proc = start_supervisor(config, {"PODIUM_BWRAP": "/nonexistent/bwrap"})
    try:
        executor = LocalExecutor(config=config)
        ok, message = executor.health()
        assert not ok and "not installed" in message
        with pytest.raises(SandboxUnavailable, match="bubblewrap"):
            executor.start(oneshot("print('never runs')"))
    finally:
        stop_supervisor(proc)


def test_health_says_how_to_start_a_missing_supervisor(own_var: Path) -> None:
    ok, message = LocalExecutor(config=SandboxConfig(var_dir=own_var)).health()
    if shutil.which("bwrap"):
        assert not ok and "python -m sandbox.supervisor" in message


def test_it_refuses_outbound_network_it_cannot_fence(local_executor: LocalExecutor) -> None:
    with pytest.raises(SpecNotSupported, match="outbound"):
        local_executor.start(oneshot("pass", network=Network.OUTBOUND))


def test_it_refuses_code_that_sandbox_users_cannot_read(local_executor: LocalExecutor, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(SandboxError, match="not world"):
        local_executor.start(oneshot("pass", code_dir=str(private)))


# -- supervisor restarts ------------------------------------------------------------------


def test_a_supervisor_restart_brings_servers_back_and_fails_interrupted_runs(own_var: Path) -> None:
    needs_sandboxes()
    config = SandboxConfig(var_dir=own_var, uid_count=100)
    proc = start_supervisor(config)
    executor = LocalExecutor(config=config)
    try:
        server = executor.start(
            SandboxSpec(workspace="acme", name="srv", purpose="server", command=["/bin/sh", "-c", "echo up; sleep 60"])
        )
        job = executor.start(
            SandboxSpec(workspace="acme", name="job", purpose="oneshot", command=["/bin/sh", "-c", "sleep 60"])
        )
        assert executor.wait(server, 10, until=frozenset({State.RUNNING})).state == State.RUNNING
        deadline = time.monotonic() + 10
        while "up" not in [line.text for line in executor.logs(server)]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
        proc.wait()
        proc = start_supervisor(config)
        status = executor.wait(server, 10, until=frozenset({State.RUNNING}))
        assert status.state == State.RUNNING
        interrupted = executor.poll(job)
        assert interrupted.state == State.FAILED and "supervisor restarted" in (interrupted.reason or "")
        deadline = time.monotonic() + 10
        while [line.text for line in executor.logs(server) if line.stream == "stdout"] != ["up", "up"]:
            assert time.monotonic() < deadline, list(executor.logs(server))
            time.sleep(0.02)
        executor.stop(server, grace_s=0.5)
        assert sorted(p.name for p in (config.root / "run").iterdir()) == []
    finally:
        stop_supervisor(proc)


# -- GPUs -----------------------------------------------------------------------------------


def fake_gpus(directory: Path, count: int) -> Path:
    directory.mkdir(mode=0o755)
    for name in [f"nvidia{i}" for i in range(count)] + ["nvidiactl", "nvidia-uvm"]:
        (directory / name).write_text("")
        (directory / name).chmod(0o666)
    return directory


def test_gpu_allocation_names_what_was_asked_and_what_exists(tmp_path: Path) -> None:
    present = gpu_devices.discover(fake_gpus(tmp_path / "dev", 2))
    assert [gpu.index for gpu in present] == [0, 1]
    assert [gpu.index for gpu in gpu_devices.allocate(1, None, present, in_use={0})] == [1]
    with pytest.raises(ResourceUnavailable, match="asked for 3 GPUs; this host has 2"):
        gpu_devices.allocate(3, None, present, in_use=set())
    with pytest.raises(ResourceUnavailable, match="1 in use by other sandboxes"):
        gpu_devices.allocate(2, None, present, in_use={1})
    with pytest.raises(ResourceUnavailable, match="0 of them matching"):
        gpu_devices.allocate(1, GpuConstraints(model="H100"), present, in_use=set())


def test_a_sandbox_gets_exactly_the_gpus_it_asked_for(own_var: Path) -> None:
    needs_sandboxes()
    dev = fake_gpus(own_var / "dev", 3)  # stand-ins for /dev/nvidia*: bound in the same way
    config = SandboxConfig(var_dir=own_var, uid_count=100, dev_dir=dev)
    proc = start_supervisor(config, {"PODIUM_SANDBOX_DEV_DIR": str(dev)})
    try:
        executor = LocalExecutor(config=config)
        status, out = run(
            executor,
            "import os; print(sorted(n for n in os.listdir('/dev') if 'nvidia' in n), "
            "os.environ['CUDA_VISIBLE_DEVICES'])",
            resources=Resources(gpus=2),
        )
        assert status.state == State.EXITED, status
        assert out == "['nvidia-uvm', 'nvidia0', 'nvidia1', 'nvidiactl'] 0,1"
        with pytest.raises(ResourceUnavailable, match="asked for 4 GPUs; this host has 3"):
            executor.start(oneshot("pass", resources=Resources(gpus=4)))
    finally:
        stop_supervisor(proc)


# -- the profile, the spec, the executor table --------------------------------------------


def test_the_profile_drops_everything_and_writes_only_scratch_and_socket(tmp_path: Path) -> None:
    plan = profile.ReplicaPlan(sandbox_id="sb1", index=0, uid=200_123, run_dir=tmp_path, spec=oneshot("pass"))
    argv = profile.argv(plan, bwrap="bwrap", setpriv="setpriv")
    assert argv[:2] == ["setpriv", "--reuid=200123"] and "--clear-groups" in argv
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--disable-userns", "--clearenv"):
        assert flag in argv
    writable = [argv[i + 2] for i, arg in enumerate(argv) if arg in ("--bind", "--dev-bind")]
    assert writable == ["/scratch", "/tmp", "/run/podium"]
    assert argv[argv.index("--remount-ro") + 1] == "/"


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"purpose": "oneshot", "replicas": 2}, "exactly one replica"),
        ({"env": {"PODIUM_TOKEN": "x"}}, "set by Podium"),
        ({"env": {"LD_PRELOAD": "/x.so"}}, "set by Podium"),
        ({"env": {"BAD NAME": "x"}}, "not a valid environment variable"),
        ({"code_dir": "relative/code"}, "not an absolute path"),
        ({"purpose": "server", "limits": {"wall_time_s": 5}}, "oneshot runs and builds only"),
        ({"resources": {"gpu": {"model": "A100"}}}, "gpus is 0"),
        ({"workspace": "Acme Corp"}, "String should match pattern"),
        ({"command": []}, "at least 1 item"),
        ({"output_dir": "/srv/envs/x"}, "for builds only"),
        ({"read_only_paths": ["/etc"]}, "for builds only"),
        ({"network": "index"}, "network 'index' is for builds"),
        ({"purpose": "build", "network": "index"}, "a build needs an output_dir"),
        ({"purpose": "build", "output_dir": "/srv/envs/x"}, "builds have network 'index'"),
        ({"purpose": "build", "network": "index", "output_dir": "/srv/envs/x", "read_only_paths": ["/opt/../etc"]},
         "not an absolute path"),
    ],
)
def test_the_spec_rejects_what_no_executor_should_run(fields: dict[str, object], problem: str) -> None:
    base = {"workspace": "acme", "name": "x", "purpose": "oneshot", "command": ["true"]}
    with pytest.raises(ValidationError, match=problem):
        SandboxSpec.model_validate({**base, **fields})


def test_get_executor_picks_the_backend_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(get_executor("local"), LocalExecutor)
    assert isinstance(get_executor("nomad"), NomadExecutor)
    assert set(EXECUTORS) == {"local", "nomad"}
    with pytest.raises(SandboxError, match="choose one of: local, nomad"):
        get_executor("kubernetes")


def test_the_nomad_client_is_imported_only_when_chosen() -> None:
    code = (
        "import sys, sandbox; sandbox.get_executor('local'); "
        "print('nomad' in sys.modules, 'sandbox.executors.nomad' in sys.modules)"
    )
    env = {**os.environ, "PODIUM_EXECUTOR": "local"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False False"


def test_stopping_a_running_oneshot_wipes_its_scratch(
    local_executor: LocalExecutor, sandbox_config: SandboxConfig
) -> None:
    handle = local_executor.start(oneshot("import time; open('/scratch/x','w').write('x'); time.sleep(30)"))
    local_executor.wait(handle, 10, until=frozenset({State.RUNNING}))
    time.sleep(0.2)
    status = local_executor.stop(handle, grace_s=0.5)
    assert status.state == State.STOPPED
    assert not list((sandbox_config.root / "run").glob(f"{handle.id}.*"))
