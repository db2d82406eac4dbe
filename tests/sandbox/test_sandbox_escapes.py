"""Escape and limit suite: real sandboxes, each attempt must be contained, and a
limit that ends a run must be named to the user.

Every test here starts real bubblewrap sandboxes through the session's
supervisor; none of them needs more than a few seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_helpers import run

from sandbox import Limits, Resources, SandboxSpec, State
from sandbox.config import SandboxConfig
from sandbox.executors.local import LocalExecutor
from sandbox.protocol import Client

pytestmark = pytest.mark.slow


def host_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


@pytest.fixture
def web_port() -> Iterator[int]:
    """Stands in for the web server: a TCP listener on every host address."""
    server = socket.create_server(("0.0.0.0", 0))  # noqa: S104 - every host address, on purpose
    yield server.getsockname()[1]
    server.close()


CONNECT = """
import socket
for host, port in {targets!r}:
    try:
        socket.create_connection((host, port), timeout=2).close()
        print("CONNECTED", host, port)
    except OSError as exc:
        print("blocked", host, port, type(exc).__name__)
"""


def test_it_cannot_reach_postgres_redis_or_the_web_server(local_executor: LocalExecutor, web_port: int) -> None:
    targets = [
        ("127.0.0.1", 5432),
        ("127.0.0.1", 6379),
        ("127.0.0.1", web_port),
        (host_ip(), web_port),
        (host_ip(), 5432),
        ("::1", 6379),
    ]
    status, out = run(local_executor, CONNECT.format(targets=targets))
    assert status.state == State.EXITED, status
    assert "CONNECTED" not in out
    assert out.count("blocked") == len(targets)


def test_the_host_services_it_cannot_reach_are_really_there(web_port: int) -> None:
    # Without this, the test above would pass on a host with nothing listening.
    socket.create_connection(("127.0.0.1", web_port), timeout=2).close()


def test_it_sees_no_network_interface_but_loopback(local_executor: LocalExecutor) -> None:
    status, out = run(local_executor, "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert out.strip() == "['lo']"


def test_it_cannot_read_etc_shadow(local_executor: LocalExecutor) -> None:
    status, out = run(
        local_executor,
        textwrap.dedent("""
        try:
            print(open('/etc/shadow').read())
        except OSError as exc:
            print('denied', type(exc).__name__)
    """),
    )
    assert out.startswith("denied"), out
    assert "root:" not in out


def test_it_cannot_see_the_hosts_processes_or_their_environment(local_executor: LocalExecutor) -> None:
    # The supervisor runs with PODIUM_TEST_CANARY in its environment.
    status, out = run(
        local_executor,
        textwrap.dedent("""
        import os
        pids = [p for p in os.listdir('/proc') if p.isdigit()]
        found = []
        for pid in pids:
            try:
                found.append(open(f'/proc/{pid}/environ', 'rb').read())
            except OSError:
                pass
        print(len(pids), b'host-secret-canary' in b''.join(found), os.environ.get('PODIUM_TEST_CANARY'))
    """),
    )
    count, leaked, env = out.split()
    assert int(count) <= 3, out  # bwrap's init, python, and nothing from the host
    assert leaked == "False" and env == "None"


def test_it_cannot_read_another_sandboxs_scratch(local_executor: LocalExecutor, sandbox_config: SandboxConfig) -> None:
    holder = local_executor.start(
        SandboxSpec(
            workspace="bob",
            name="holder",
            purpose="server",
            command=["/bin/sh", "-c", "echo bobs-secret > /scratch/secret; echo bobs-secret > /tmp/secret; sleep 60"],
        )
    )
    try:
        run_dirs = list((sandbox_config.root / "run").glob(f"{holder.id}.*"))
        assert run_dirs
        deadline = time.monotonic() + 10
        secret = run_dirs[0] / "scratch" / "home" / "secret"
        while not secret.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert secret.exists()
        status, out = run(
            local_executor,
            textwrap.dedent(f"""
            import os, glob
            for path in [{str(secret)!r}, {str(run_dirs[0])!r}, '/proc/1/root/scratch/secret']:
                try:
                    print('READ', open(path).read() if os.path.isfile(path) else os.listdir(path))
                except OSError as exc:
                    print('denied', type(exc).__name__)
            print('visible', glob.glob('/*/secret') + glob.glob('/*/*/secret'))
        """),
        )
        assert "bobs-secret" not in out
        assert "READ" not in out
    finally:
        local_executor.stop(holder, grace_s=0.5)


def test_it_cannot_write_to_usr_etc_or_root(local_executor: LocalExecutor) -> None:
    status, out = run(
        local_executor,
        textwrap.dedent("""
        for path in ['/usr/evil', '/etc/evil', '/evil', '/usr/bin/python3', '/etc/passwd', '/code-evil']:
            try:
                open(path, 'a').write('x')
                print('WROTE', path)
            except OSError as exc:
                print('denied', path, type(exc).__name__)
    """),
    )
    assert "WROTE" not in out
    assert out.count("denied") == 6


def test_it_cannot_remount_a_read_only_path(local_executor: LocalExecutor) -> None:
    status, out = run(
        local_executor,
        textwrap.dedent("""
        import ctypes, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        MS_REMOUNT, MS_BIND = 32, 4096
        rc = libc.mount(b'none', b'/usr', None, MS_REMOUNT | MS_BIND, None)
        print('remount', rc, os.strerror(ctypes.get_errno()))
        rc = libc.mount(b'tmpfs', b'/usr', b'tmpfs', 0, None)
        print('mount', rc, os.strerror(ctypes.get_errno()))
        print('unshare', libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))  # CLONE_NEWUSER
        try:
            open('/usr/evil', 'w')
            print('WROTE')
        except OSError as exc:
            print('still read-only', type(exc).__name__)
    """),
    )
    assert "remount -1" in out and "mount -1" in out and "unshare -1" in out
    assert "WROTE" not in out


def test_a_setuid_binary_does_not_raise_privileges(local_executor: LocalExecutor, code_dir: Path) -> None:
    suid_id = code_dir / "id"
    shutil.copy("/usr/bin/id", suid_id)
    os.chown(suid_id, 0, 0)
    suid_id.chmod(0o4755)
    status, out = run(
        local_executor,
        textwrap.dedent("""
        import os, subprocess
        print('euid', subprocess.run(['/code/id', '-u'], capture_output=True, text=True).stdout.strip())
        print('nnp', [l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0].split()[1])
        print('caps', [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1])
        r = subprocess.run(['/usr/bin/mount', '-t', 'tmpfs', 'none', '/scratch'], capture_output=True, text=True)
        print('mount-rc', r.returncode)
    """),
        code_dir=str(code_dir),
    )
    fields = dict(line.split(" ", 1) for line in out.splitlines())
    assert fields["euid"] != "0" and fields["euid"].isdigit()
    assert fields["nnp"] == "1"
    assert int(fields["caps"], 16) == 0
    assert fields["mount-rc"] != "0"


def test_it_cannot_inject_input_into_a_terminal(local_executor: LocalExecutor) -> None:
    status, out = run(
        local_executor,
        textwrap.dedent("""
        import fcntl, termios, os
        for target in ['/dev/tty', 0, 1, 2]:
            try:
                fd = os.open(target, os.O_RDWR) if isinstance(target, str) else target
                fcntl.ioctl(fd, termios.TIOCSTI, b'x')
                print('INJECTED', target)
            except OSError as exc:
                print('blocked', target, type(exc).__name__)
        print('sid', os.getsid(0) == os.getpid() or os.getsid(0) != os.getppid())
    """),
    )
    assert "INJECTED" not in out
    assert out.count("blocked") == 4


def test_a_fork_bomb_hits_the_process_limit(local_executor: LocalExecutor) -> None:
    status, _ = run(
        local_executor,
        textwrap.dedent("""
        import os, time
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
    """),
        limits=Limits(pids=32, wall_time_s=20),
    )
    assert status.state == State.FAILED
    assert status.limit == "process"
    assert "process limit" in (status.reason or "")


def test_a_shell_fork_bomb_is_contained(local_executor: LocalExecutor) -> None:
    handle = local_executor.start(
        SandboxSpec(
            workspace="acme",
            name="bomb",
            purpose="oneshot",
            limits=Limits(pids=32, wall_time_s=3),
            command=["/bin/sh", "-c", "b() { b | b & }; b; sleep 10"],
        )
    )
    status = local_executor.wait(handle, timeout=30)
    assert status.state == State.FAILED
    assert status.limit == "process"


def test_a_memory_bomb_hits_the_memory_limit(local_executor: LocalExecutor) -> None:
    status, _ = run(
        local_executor,
        textwrap.dedent("""
        blocks = []
        while True:
            blocks.append(bytearray(8 << 20))
    """),
        resources=Resources(memory_mib=64),
    )
    assert status.state == State.FAILED
    assert status.limit == "memory"
    assert status.reason is not None and "memory limit" in status.reason and "64 MiB" in status.reason


def test_an_infinite_loop_hits_the_time_limit(local_executor: LocalExecutor) -> None:
    started = time.monotonic()
    status, _ = run(local_executor, "while True: pass", limits=Limits(wall_time_s=1))
    assert time.monotonic() - started < 10
    assert status.state == State.FAILED
    assert status.limit == "time"
    assert "time limit" in (status.reason or "")


def test_a_cpu_hog_hits_the_cpu_time_limit(local_executor: LocalExecutor) -> None:
    status, _ = run(local_executor, "while True: pass", limits=Limits(cpu_time_s=1, wall_time_s=20))
    assert status.limit == "cpu time"


def test_filling_tmp_hits_the_disk_limit(local_executor: LocalExecutor) -> None:
    status, _ = run(
        local_executor,
        textwrap.dedent("""
        with open('/tmp/fill', 'wb') as f:
            for _ in range(1000):
                f.write(b'x' * (1 << 20))
                f.flush()
    """),
        limits=Limits(disk_mib=16),
        resources=Resources(memory_mib=256),
    )
    assert status.state == State.FAILED
    assert status.limit == "disk"
    assert "disk limit" in (status.reason or "") and "16 MiB" in (status.reason or "")


def test_filling_scratch_with_many_files_hits_the_disk_limit(local_executor: LocalExecutor) -> None:
    status, _ = run(
        local_executor,
        textwrap.dedent("""
        for i in range(1000):
            with open(f'/scratch/f{i}', 'wb') as f:
                f.write(b'x' * (1 << 20))
    """),
        limits=Limits(disk_mib=8),
        resources=Resources(memory_mib=256),
    )
    assert status.limit == "disk"


def test_nothing_one_run_leaves_behind_is_visible_to_the_next(
    local_executor: LocalExecutor, sandbox_config: SandboxConfig
) -> None:
    code = textwrap.dedent("""
        import os, glob, sys
        seen = glob.glob('/scratch/*') + glob.glob('/tmp/*') + glob.glob('/run/podium/*')
        open('/scratch/mark', 'w').write('x'); open('/tmp/mark', 'w').write('x')
        open('/run/podium/mark', 'w').write('x')
        os.system('sleep 30 &')  # a straggler that must not survive the run
        print(seen)
    """)
    for attempt in range(100):
        status, out = run(local_executor, code)
        assert status.state == State.EXITED, (attempt, status)
        assert out.strip() == "[]", (attempt, out)
    assert not list((sandbox_config.root / "run").iterdir())
    with open("/proc/self/mounts") as mounts:
        assert str(sandbox_config.root) not in mounts.read()
    uids = range(*Client(sandbox_config.socket_path).call("ping")["uids"])
    deadline = time.monotonic() + 5  # adopted orphans are reaped every 0.5 s
    while stragglers := [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) in uids]:
        assert time.monotonic() < deadline, stragglers
        time.sleep(0.1)


PTRACE_SERVER = """
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
for name, request, pid in (("ATTACH", 16, 1), ("SEIZE", 0x4206, 1), ("TRACEME", 0, 0)):
    result = libc.ptrace(request, pid, None, None)
    print(name, result, errno.errorcode.get(ctypes.get_errno(), "ok") if result else "ok", flush=True)
server = socket.socket(socket.AF_UNIX)
server.bind("/run/podium/server.sock")
server.listen()
while True:
    conn, _ = server.accept()
    conn.sendall(b"alive")
    conn.close()
"""


def test_ptrace_of_its_own_init_is_denied_and_the_replica_keeps_serving(local_executor: LocalExecutor) -> None:
    handle = local_executor.start(SandboxSpec(
        workspace="acme", name="tracer", purpose="server", command=["/usr/bin/python3", "-c", PTRACE_SERVER]))
    try:
        deadline = time.monotonic() + 10
        while len([line for line in local_executor.logs(handle) if line.stream == "stdout"]) < 3:
            assert time.monotonic() < deadline, list(local_executor.logs(handle))
            time.sleep(0.05)
        out = [line.text for line in local_executor.logs(handle) if line.stream == "stdout"]
        assert out == ["ATTACH -1 EPERM", "SEIZE -1 EPERM", "TRACEME -1 EPERM"], out
        time.sleep(0.5)
        assert local_executor.poll(handle).state == State.RUNNING
        for _ in range(3):
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(2)
                client.connect(local_executor.address(handle).removeprefix("unix:"))
                assert client.recv(16) == b"alive"
    finally:
        local_executor.stop(handle, grace_s=0.5)


def test_its_environment_names_no_host_path_or_supervisor_id(
    local_executor: LocalExecutor, sandbox_config: SandboxConfig
) -> None:
    status, out = run(local_executor, "import os; print(sorted(os.environ.items()))")
    assert status.state == State.EXITED, status
    assert str(sandbox_config.root) not in out and str(sandbox_config.var_dir) not in out, out
    assert status.id not in out and "PODIUM_SANDBOX_ID" not in out, out
    assert "'PODIUM_LISTEN', 'unix:/run/podium/server.sock'" in out


def _uid(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def test_the_supervisor_stays_healthy_after_the_attacks(local_executor: LocalExecutor) -> None:
    ok, message = local_executor.health()
    assert ok, message
    status, out = run(local_executor, "print('still fine')")
    assert out == "still fine"


def test_the_sandbox_user_is_unprivileged_and_unique(local_executor: LocalExecutor) -> None:
    first = local_executor.start(
        SandboxSpec(
            workspace="acme", name="a", purpose="server", command=["/bin/sh", "-c", "id -u > /run/podium/uid; sleep 30"]
        )
    )
    second = local_executor.start(
        SandboxSpec(
            workspace="acme", name="b", purpose="server", command=["/bin/sh", "-c", "id -u > /run/podium/uid; sleep 30"]
        )
    )
    try:
        uids = []
        for handle in (first, second):
            path = Path(local_executor.address(handle).removeprefix("unix:")).parent / "uid"
            deadline = time.monotonic() + 10
            while not path.exists() or not path.read_text().strip():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            uids.append(int(path.read_text()))
        assert 0 not in uids and uids[0] != uids[1]
    finally:
        local_executor.stop(first, grace_s=0.5)
        local_executor.stop(second, grace_s=0.5)


STOPS_ANSWERING = """
import os, signal, socket, time
server = socket.socket(socket.AF_UNIX)
server.bind("/run/podium/server.sock")
server.listen()
started = time.monotonic()
while True:
    conn, _ = server.accept()
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
    conn.close()
    if time.monotonic() - started > 1 and os.environ.get("PODIUM_REPLICA") == "0":
        print("freezing", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)  # alive, its socket still there, answering nothing
"""


def test_a_server_that_stops_answering_is_killed_and_restarted(local_executor: LocalExecutor) -> None:
    handle = local_executor.start(SandboxSpec(
        workspace="acme", name="frozen", purpose="server", command=["/usr/bin/python3", "-c", STOPS_ANSWERING],
        health={"interval_s": 0.3, "timeout_s": 0.5, "failures": 3, "start_s": 5},
        restart={"backoff_s": 0.1}))
    try:
        deadline = time.monotonic() + 20
        while local_executor.poll(handle).restarts < 1:
            assert time.monotonic() < deadline, list(local_executor.logs(handle))
            time.sleep(0.1)
        system = [line.text for line in local_executor.logs(handle) if line.stream == "system"]
        assert any("health check: the server did not answer GET /healthz within 0.5 s, 3 times in a row" in text
                   for text in system), system
        # Back and answering again after the restart.
        deadline = time.monotonic() + 10
        while local_executor.poll(handle).state != State.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        local_executor.stop(handle, grace_s=0.5)
