"""The in-sandbox warm runner, run as its own process over a unix socket, driven by Podium's client
for it (webapp.ide.warm). The sandbox around it, and the editor's use of it, are tested in tests/ide/."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from webapp.ide import files as f
from webapp.ide import warm

RUNNER = Path(__file__).resolve().parents[2] / "sandbox" / "runtime" / "warm_runner.py"
RESULT = "@@podium-test-result@@ "


class Runner:
    id = "runner-under-test"

    def __init__(self, sock: Path, preload: str) -> None:
        self.address = f"unix:{sock}"
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER), "--preload", preload],
            env={"PATH": os.environ["PATH"], "PODIUM_LISTEN": self.address,
                 "WARM_RUNNER_TOKEN": warm.token_for(self.id)},
            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 30
        while (answer := warm.ping(self.address, self.id)) is None:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            assert time.monotonic() < deadline, "the runner never answered"
            time.sleep(0.02)
        self.info = answer

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    running = Runner(tmp_path / "runner.sock", "json,sklearn.linear_model,no_such_module_podium,os.path?,json.dumps?")
    yield running
    running.stop()


def bundle(code: str, extra: dict[str, str] | None = None) -> bytes:
    files = {"model.py": textwrap.dedent(code), **(extra or {})}
    return f.bundle_tar(files, {}, f.manifest_for(files))


def run(runner: Runner, code: str, sample: Any = None, wall: float = 30, **extra: str) -> dict[str, Any]:
    frames = list(warm.run(runner.address, runner.id, bundle(code, extra), sample, wall))
    lines = [frame for frame in frames if "stream" in frame]
    result = next((json.loads(line["text"][len(RESULT):]) for line in lines if line["text"].startswith(RESULT)), None)
    return {"lines": lines, "text": "\n".join(line["text"] for line in lines), "result": result,
            "exit": frames[-1]}


ECHO = """
    class Model:
        def load(self):
            print("loaded!")

        def predict(self, body):
            import sys
            print("to stderr", file=sys.stderr)
            return {"echo": body}
"""


def test_it_says_what_it_imported_ahead_of_time(runner):
    assert runner.info["ready"] is True
    assert {"json", "sklearn.linear_model"} <= set(runner.info["preloaded"])
    # ``os.path?`` is a module (imported); ``json.dumps?`` is only a name (skipped, not a failure).
    assert "os.path" in runner.info["preloaded"] and "json.dumps" not in runner.info["preloaded"]
    assert list(runner.info["failed"]) == ["no_such_module_podium"]


def test_a_run_streams_its_output_and_reports_the_harness_result(runner):
    outcome = run(runner, ECHO, {"x": 1})

    assert outcome["result"]["ok"] is True and outcome["result"]["answer"] == {"echo": {"x": 1}}
    assert outcome["exit"] == {"exit": 0, "signal": None, "limit": None, "reason": None}
    streams = {line["text"]: line["stream"] for line in outcome["lines"]}
    assert streams["loaded!"] == "stdout" and streams["to stderr"] == "stderr"
    assert all(line["time"] for line in outcome["lines"])
    assert "[podium] warm start: the libraries were imported before this run" in outcome["text"]


def test_a_failing_predict_names_the_line_as_a_oneshot_run_does(runner):
    code = "class Model:\n    def predict(self, body):\n        return 1 / 0\n"
    outcome = run(runner, code, {})

    assert outcome["exit"]["exit"] == 1
    error = outcome["result"]["error"]
    assert outcome["result"]["step"] == "predict" and error["type"] == "ZeroDivisionError"
    assert (error["path"], error["line"]) == ("model.py", 3)


def test_a_run_cannot_change_what_the_next_run_starts_from(runner):
    dirty = """
        import json
        json.left_behind = "by an earlier run"

        class Model:
            def predict(self, body):
                return 1
    """
    check = """
        import json

        class Model:
            def predict(self, body):
                return hasattr(json, "left_behind")
    """
    assert run(runner, dirty)["result"]["ok"] is True
    assert run(runner, check)["result"]["answer"] is False


def test_a_run_over_its_wall_time_is_killed_with_what_it_started(runner):
    code = """
        import subprocess, time

        class Model:
            def load(self):
                child = subprocess.Popen(["sleep", "300"])
                print("grandchild", child.pid, flush=True)
                time.sleep(300)

            def predict(self, body):
                return 1
    """
    started = time.monotonic()
    outcome = run(runner, code, wall=1.5)

    assert time.monotonic() - started < 10
    assert outcome["exit"]["limit"] == "time" and "wall-time limit" in outcome["exit"]["reason"]
    grandchild = int(next(line["text"] for line in outcome["lines"] if line["text"].startswith("grandchild"))
                     .split()[1])
    deadline = time.monotonic() + 5  # SIGKILL was sent; give a loaded machine a moment to carry it out
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert warm.ping(runner.address, runner.id)["runs"] == 1  # the runner itself carries on


def test_a_run_whose_caller_goes_away_is_killed(runner):
    code = """
        import os, time

        class Model:
            def load(self):
                print("pid", os.getpid(), flush=True)
                time.sleep(300)

            def predict(self, body):
                return 1
    """
    frames = warm.run(runner.address, runner.id, bundle(code), None, 300)
    pid = None
    for frame in frames:
        if frame.get("text", "").startswith("pid "):
            pid = int(frame["text"].split()[1])
            break
    frames.close()  # closes the connection, as a web process that died would
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_runs_in_parallel_each_get_their_own_answer(runner):
    code = """
        import time

        class Model:
            def predict(self, body):
                time.sleep(1.5)
                return body
    """
    answers: dict[int, Any] = {}

    def one(i: int) -> None:
        answers[i] = run(runner, code, {"i": i})["result"]["answer"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == {i: {"i": i} for i in range(4)}
    assert time.monotonic() - started < 4.5  # four 1.5 s predicts side by side, not one after another (6 s)


def test_a_bundle_that_reaches_outside_its_directory_is_refused(runner):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"class Model:\n    def predict(self, body):\n        return 1\n"
        info = tarfile.TarInfo("../escaped.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    frames = list(warm.run(runner.address, runner.id, buffer.getvalue(), None, 30))

    assert frames[-1]["exit"] != 0
    assert any("outside the bundle" in frame.get("text", "") for frame in frames)


def test_an_http_health_check_is_answered(runner):
    import httpx

    sock = runner.address[len("unix:"):]
    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://runner") as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["ready"] is True


def test_a_malformed_request_is_refused_and_the_runner_carries_on(runner):
    with warm.connect(runner.address, 2) as sock:
        sock.sendall(b"not json\n")
        assert b"bad request" in sock.recv(1000)
    with warm.connect(runner.address, 2) as sock:
        sock.sendall(b'["a list"]\n')
        assert b"must be a JSON object" in sock.recv(1000)
    with warm.connect(runner.address, 2) as sock:
        sock.sendall(json.dumps({"op": "launch", "token": warm.token_for(runner.id)}).encode() + b"\n")
        assert json.loads(sock.recv(1000)) == {"error": "unknown op 'launch'"}
    assert warm.ping(runner.address, runner.id)["ready"] is True


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_request_without_the_runners_token_is_refused(runner):
    with pytest.raises(warm.RunnerUnreachable, match="a valid token is needed"):
        list(warm.run(runner.address, "another-runner", bundle(ECHO), {}, 30))
    with warm.connect(runner.address, 2) as sock:
        sock.sendall(b'{"op": "ping"}\n')
        assert b"a valid token is needed" in sock.recv(1000)
    assert warm.ping(runner.address, runner.id)["runs"] == 0


def test_the_run_does_not_see_the_runners_token(runner):
    code = """
        import os

        class Model:
            def predict(self, body):
                return sorted(name for name in os.environ if "TOKEN" in name)
    """
    assert run(runner, code)["result"]["answer"] == []


def test_a_process_that_leaves_the_runs_group_dies_with_the_run(runner):
    code = """
        import subprocess

        class Model:
            def load(self):
                escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
                print("escaped", escaped.pid, flush=True)

            def predict(self, body):
                return 1
    """
    outcome = run(runner, code)
    pid = int(next(line["text"] for line in outcome["lines"] if line["text"].startswith("escaped")).split()[1])

    assert outcome["result"]["ok"] is True
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_a_flood_of_output_is_cut_and_stopped_and_the_runner_carries_on(runner, monkeypatch):
    monkeypatch.setattr(warm, "MAX_OUTPUT", 2 << 20)
    code = """
        import sys

        class Model:
            def load(self):
                print("x" * 100_000, flush=True)  # one over-long line: comes in pieces
                print("short line after it", flush=True)
                sys.stdout.write("y" * 1000 + "\\n")
                while True:
                    sys.stdout.write("z" * 1000 + "\\n")

            def predict(self, body):
                return 1
    """
    started = time.monotonic()
    outcome = run(runner, code, wall=60)

    assert time.monotonic() - started < 30
    assert outcome["exit"]["limit"] == "output" and "more than 2 MiB" in outcome["exit"]["reason"]
    assert "short line after it" in outcome["text"]
    assert all(len(line["text"]) <= warm.LINE_MAX for line in outcome["lines"])
    assert sum(len(line["text"]) for line in outcome["lines"] if line["text"].startswith("xxxx")) == 100_000
    assert warm.ping(runner.address, runner.id)["ready"] is True


def test_a_killed_run_leaves_nothing_in_tmp(runner):
    probe = """
        import glob

        class Model:
            def predict(self, body):
                return sorted(glob.glob("/tmp/podium-run-*"))
    """
    sleepy = "import time\n\nclass Model:\n    def load(self):\n        time.sleep(300)\n"
    before = set(run(runner, probe)["result"]["answer"])
    assert run(runner, sleepy, wall=1)["exit"]["limit"] == "time"

    mine = run(runner, probe)["result"]["answer"]
    assert len(set(mine) - before) == 1  # only the probe's own directory


def test_the_platform_reads_only_bounded_json_objects_from_a_runner(monkeypatch):
    """What a sandbox sends back cannot grow the web process: over-long lines are dropped, lines that are
    not JSON objects are skipped, and the whole is capped."""
    import socket

    ours, theirs = socket.socketpair()
    with ours, theirs:
        sent = (b"not json\n" + b'["a list"]\n' + b"z" * 300_000 + b"\n"
                + json.dumps({"stream": "stdout", "text": "kept"}).encode() + b"\n")
        writer = threading.Thread(target=lambda: (theirs.sendall(sent), theirs.shutdown(socket.SHUT_WR)))
        writer.start()
        frames = list(warm._frames(ours, 5))
        writer.join()
    assert frames == [{"stream": "stdout", "text": "kept"}]

    monkeypatch.setattr(warm, "MAX_OUTPUT", 1 << 20)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        flood = threading.Thread(target=lambda: theirs.sendall(b"{}\n" * (warm.MAX_OUTPUT // 3 + 10)), daemon=True)
        flood.start()
        with pytest.raises(warm.OutputLimit):
            for _ in warm._frames(ours, 5):
                pass
