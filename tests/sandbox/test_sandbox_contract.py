"""The executor contract, run against every backend: the local executor (real
bubblewrap sandboxes through the supervisor) and the Nomad executor talking to
the in-process fake of Nomad's HTTP API. A behaviour belongs here when callers
(web, worker) rely on it whichever executor runs."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_nomad import FakeNomad
from sandbox_helpers import PYTHON

from sandbox import (
    Limits,
    Resources,
    ResourceUnavailable,
    RestartPolicy,
    SandboxHandle,
    SandboxNotFound,
    SandboxSpec,
    State,
)
from sandbox.executors.base import Executor
from sandbox.executors.local import LocalExecutor
from sandbox.executors.nomad import NomadConfig, NomadExecutor

pytestmark = pytest.mark.slow

SERVER = textwrap.dedent("""
    import http.server, os, signal, socketserver
    listen = os.environ["PODIUM_LISTEN"]
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("ok " + os.environ["PODIUM_REPLICA"]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    if listen.startswith("unix:"):
        class Server(socketserver.UnixStreamServer):
            def get_request(self):
                request, _ = super().get_request()
                return request, ("sandbox", 0)
        server = Server(listen[5:], Handler)
    else:
        host, port = listen[4:].rsplit(":", 1)
        server = http.server.HTTPServer((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("listening", flush=True)
    server.serve_forever()
""")


@pytest.fixture(scope="module")
def fake_nomad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeNomad]:
    fake = FakeNomad(tmp_path_factory.mktemp("nomad"), token="podium-test-token").start()
    yield fake
    fake.close()


@pytest.fixture(params=["local", "nomad"])
def executor(request: pytest.FixtureRequest) -> Executor:
    if request.param == "local":
        local: LocalExecutor = request.getfixturevalue("local_executor")
        return local
    fake: FakeNomad = request.getfixturevalue("fake_nomad")
    return NomadExecutor(NomadConfig(address=fake.address, token=fake.token, signing_key=b"test"))


def spec(purpose: str = "oneshot", command: list[str] | None = None, **fields: object) -> SandboxSpec:
    return SandboxSpec.model_validate(
        {"workspace": "acme", "name": "contract", "purpose": purpose, "command": command or ["true"], **fields}
    )


def sh(script: str, purpose: str = "oneshot", **fields: object) -> SandboxSpec:
    return spec(purpose, ["/bin/sh", "-c", script], **fields)


def stdout(executor: Executor, handle: SandboxHandle) -> list[str]:
    return [line.text for line in executor.logs(handle) if line.stream == "stdout"]


def http_get(address: str, path: str = "/healthz") -> str:
    if address.startswith("unix:"):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(2)
        conn.connect(address[5:])
    else:
        host, port = address.removeprefix("http://").rsplit(":", 1)
        conn = socket.create_connection((host, int(port)), timeout=2)
    with conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: sandbox\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200"), head
    return body


def wait_until_answering(
    executor: Executor, handle: SandboxHandle, replicas: int = 1, timeout: float = 20
) -> list[str]:
    """Bodies from every replica once ``replicas`` of them are listed: replicas become
    ready one by one, and an executor lists only those that are ready."""
    deadline = time.monotonic() + timeout
    while True:
        addresses = executor.addresses(handle)
        try:
            if len(addresses) >= replicas:
                return [http_get(address) for address in addresses]
        except OSError:
            pass
        assert time.monotonic() < deadline, executor.poll(handle)
        time.sleep(0.05)


def test_it_runs_a_oneshot_to_success(executor: Executor) -> None:
    handle = executor.start(sh("echo hello; echo world"))
    status = executor.wait(handle, timeout=30)
    assert status.state == State.EXITED and status.exit_code == 0, status
    assert stdout(executor, handle) == ["hello", "world"]


def test_it_reports_a_failure_with_its_exit_code_and_both_streams(executor: Executor) -> None:
    handle = executor.start(sh("echo out; echo err >&2; exit 3"))
    status = executor.wait(handle, timeout=30)
    assert status.state == State.FAILED
    assert status.exit_code == 3
    assert status.reason == "exited with code 3"
    streams = {(line.stream, line.text) for line in executor.logs(handle)}
    assert {("stdout", "out"), ("stderr", "err")} <= streams


def test_it_names_the_time_limit(executor: Executor) -> None:
    handle = executor.start(spec(command=[PYTHON, "-c", "while True: pass"], limits=Limits(wall_time_s=1)))
    status = executor.wait(handle, timeout=30)
    assert status.state == State.FAILED
    assert status.limit == "time"
    assert status.reason is not None and status.reason.startswith("time limit")


def test_a_server_answers_at_its_addresses_until_stopped(executor: Executor) -> None:
    handle = executor.start(spec("server", [PYTHON, "-c", SERVER], replicas=2))
    try:
        bodies = wait_until_answering(executor, handle, replicas=2)
        assert sorted(bodies) == ["ok 0", "ok 1"]
        assert executor.poll(handle).state == State.RUNNING
    finally:
        status = executor.stop(handle, grace_s=2)
    assert status.state == State.STOPPED
    assert executor.addresses(handle) == []


def test_it_restarts_a_crashed_server_with_backoff_then_gives_up(executor: Executor) -> None:
    restart = RestartPolicy(attempts=2, backoff_s=0.2, max_backoff_s=1)
    handle = executor.start(sh("echo started; exit 1", purpose="server", restart=restart))
    status = executor.wait(handle, timeout=30)
    assert status.state == State.FAILED
    assert status.restarts == 2
    assert stdout(executor, handle).count("started") == 3


def test_a_saved_handle_finds_the_sandbox_again(executor: Executor) -> None:
    handle = executor.start(sh("sleep 30", purpose="server"))
    saved = handle.model_dump_json()
    again = type(executor).__new__(type(executor))
    again.__dict__.update(executor.__dict__)  # a new executor object, as another process would build
    restored = SandboxHandle.model_validate_json(saved)
    assert again.wait(restored, timeout=20, until=frozenset({State.RUNNING})).state == State.RUNNING
    assert again.stop(restored, grace_s=1).state == State.STOPPED


def test_stopping_a_finished_sandbox_changes_nothing(executor: Executor) -> None:
    handle = executor.start(sh("exit 0"))
    assert executor.wait(handle, timeout=30).state == State.EXITED
    assert executor.stop(handle).state == State.EXITED


def test_it_refuses_more_gpus_than_exist_naming_both(executor: Executor) -> None:
    with pytest.raises(ResourceUnavailable) as refused:
        executor.start(spec(resources=Resources(gpus=2)))
    message = str(refused.value)
    assert "asked for" in message and "2" in message
    assert "this host has 0" in message or "missing devices" in message


def test_an_unknown_sandbox_is_not_found(executor: Executor) -> None:
    handle = SandboxHandle(executor=executor.name, id="sb000000000000", state={"namespace": "podium-acme"})
    with pytest.raises(SandboxNotFound):
        executor.poll(handle)


def test_following_logs_yields_lines_as_written_and_ends_with_the_run(executor: Executor) -> None:
    handle = executor.start(sh("for i in 1 2 3; do echo line $i; sleep 0.2; done"))
    seen = [line.text for line in executor.logs(handle, follow=True) if line.stream == "stdout"]
    assert seen == ["line 1", "line 2", "line 3"]
    assert executor.poll(handle).done


def test_tail_gives_the_last_lines(executor: Executor) -> None:
    handle = executor.start(sh("for i in 1 2 3 4 5; do echo $i; done"))
    executor.wait(handle, timeout=30)
    assert [line.text for line in executor.logs(handle, tail=2)] == ["4", "5"]


def test_logs_are_timestamped(executor: Executor) -> None:
    handle = executor.start(sh("echo stamped"))
    executor.wait(handle, timeout=30)
    (line,) = [line for line in executor.logs(handle) if line.stream == "stdout"]
    assert line.time.tzinfo is not None and abs(time.time() - line.time.timestamp()) < 60


def test_it_reports_its_health(executor: Executor) -> None:
    ok, message = executor.health()
    assert ok, message


def test_the_sandbox_learns_who_it_is_from_its_environment(executor: Executor, tmp_path: Path) -> None:
    handle = executor.start(sh('echo "$PODIUM_WORKSPACE $PODIUM_PURPOSE $PODIUM_REPLICA"'))
    executor.wait(handle, timeout=30)
    assert stdout(executor, handle) == ["acme oneshot 0"]
