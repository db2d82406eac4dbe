"""The in-sandbox model server, run as its own process over a unix socket.

These tests exercise the server program itself (loading each flavor, the HTTP
contract, errors); the sandbox around it is tested in tests/sandbox/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.linear_model import LogisticRegression

SERVER = Path(__file__).resolve().parents[2] / "sandbox" / "runtime" / "model_server.py"


def write_bundle(root: Path, manifest: dict, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "podium.json").write_text(json.dumps({"format": 1, "name": "m", **manifest}))
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


class Running:
    def __init__(self, bundle: Path, sock: Path, *args: str) -> None:
        self.sock = sock
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(bundle), *args],
            env={"PATH": os.environ["PATH"], "PODIUM_LISTEN": f"unix:{sock}"},
            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://model")

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if self.client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError("server never became ready")

    def stop(self) -> str:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        return self.proc.stderr.read()


@pytest.fixture
def serve(tmp_path):
    started: list[Running] = []

    def start(bundle: Path, *args: str) -> Running:
        running = Running(bundle, tmp_path / f"s{len(started)}.sock", *args)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


CUSTOM = """
    class Model:
        def load(self):
            with open("vocab.txt") as handle:
                self.words = handle.read().split()

        def predict(self, body):
            if body.get("explode"):
                raise RuntimeError("boom")
            if "text" not in body:
                raise KeyError("text")
            if body.get("bad_output"):
                return {"value": object()}
            return {"known": [w for w in body["text"].split() if w in self.words]}
"""


def test_it_serves_a_custom_class(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": CUSTOM, "vocab.txt": "cat dog\n"})
    server = serve(bundle)
    server.wait_ready()
    response = server.client.post("/predict", json={"text": "a cat and a dog"})
    assert response.status_code == 200
    assert response.json() == {"known": ["cat", "dog"]}


def test_errors_say_what_went_wrong(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": CUSTOM, "vocab.txt": "cat\n"})
    server = serve(bundle)
    server.wait_ready()
    bad_json = server.client.post("/predict", content=b"{nope", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["detail"]
    rejected = server.client.post("/predict", json={})
    assert rejected.status_code == 422 and "KeyError" in rejected.json()["detail"]
    broken = server.client.post("/predict", json={"text": "x", "explode": True})
    assert broken.status_code == 500 and broken.json()["detail"] == "predict() raised RuntimeError: boom"
    not_json = server.client.post("/predict", json={"text": "x", "bad_output": True})
    assert not_json.status_code == 500 and "not JSON" in not_json.json()["detail"]
    # Still serving after all of that.
    assert server.client.post("/predict", json={"text": "cat"}).json() == {"known": ["cat"]}
    assert "RuntimeError: boom" in server.stop()


def test_it_serves_a_scikit_learn_model(tmp_path, serve):
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    bundle = write_bundle(tmp_path / "b", {"flavor": "sklearn", "artifact": "artifacts/model.joblib"})
    (bundle / "artifacts").mkdir()
    joblib.dump(model, bundle / "artifacts" / "model.joblib")
    server = serve(bundle)
    server.wait_ready()
    response = server.client.post("/predict", json={"inputs": [[0.0], [3.0]]})
    assert response.json() == {"predictions": [0, 1]}
    missing = server.client.post("/predict", json={"rows": []})
    assert missing.status_code == 422 and '"inputs"' in missing.json()["detail"]


def test_it_serves_torchscript(tmp_path, serve):
    import torch

    module = torch.jit.script(torch.nn.Linear(2, 1))
    with torch.no_grad():
        module.weight.fill_(1.0)
        module.bias.fill_(0.5)
    bundle = write_bundle(tmp_path / "b", {"flavor": "torchscript", "artifact": "artifacts/model.pt"})
    (bundle / "artifacts").mkdir()
    module.save(str(bundle / "artifacts" / "model.pt"))
    server = serve(bundle)
    server.wait_ready(timeout=60)
    assert server.client.post("/predict", json={"inputs": [[1.0, 2.0]]}).json() == {"predictions": [[3.5]]}


def test_a_failing_load_exits_with_its_traceback(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"}, {
        "model.py": """
            class Model:
                def load(self):
                    raise FileNotFoundError("weights.bin is missing")

                def predict(self, body):
                    return body
        """,
    })
    server = serve(bundle)
    assert server.proc.wait(20) == 3
    stderr = server.stop()
    assert "FileNotFoundError: weights.bin is missing" in stderr
    assert "load failed" in stderr


def test_health_answers_while_loading_and_ready_waits(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"}, {
        "model.py": """
            import time

            class Model:
                def load(self):
                    time.sleep(1.0)

                def predict(self, body):
                    return {"echo": body}
        """,
    })
    server = serve(bundle)
    deadline = time.monotonic() + 10
    while True:
        try:
            health = server.client.get("/healthz")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert health.status_code == 200
    assert server.client.get("/ready").status_code == 503
    assert server.client.post("/predict", json={}).status_code == 503
    server.wait_ready()
    assert server.client.post("/predict", json=[1, 2]).json() == {"echo": [1, 2]}


def test_it_refuses_oversized_bodies_and_unknown_routes(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": "class Model:\n    def predict(self, body):\n        return body\n"})
    server = serve(bundle, "--max-body", "100")
    server.wait_ready()
    assert server.client.post("/predict", json={"x": "y" * 200}).status_code == 413
    assert server.client.get("/nope").status_code == 404
    assert server.client.get("/predict").status_code == 405


def test_keep_alive_serves_many_requests_on_one_connection(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": "class Model:\n    def predict(self, body):\n        return body\n"})
    server = serve(bundle)
    server.wait_ready()
    for i in range(200):
        assert server.client.post("/predict", json={"i": i}).json() == {"i": i}


def test_deep_nesting_is_a_clear_400_and_the_server_keeps_serving(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": "class Model:\n    def predict(self, body):\n        return body\n"})
    server = serve(bundle)
    server.wait_ready()
    deep = b"[" * 5000 + b"]" * 5000
    response = server.client.post("/predict", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "nests arrays and objects too deeply: keep it under 900 levels" in response.json()["detail"]
    shallow = {"inputs": [[[[1]]]]}
    assert server.client.post("/predict", json=shallow).json() == shallow


NON_FINITE = """
    import math

    class Model:
        def predict(self, body):
            if body.get("deep"):
                value = []
                for _ in range(5000):
                    value = [value]
                return value
            return {"predictions": [1.5, math.nan, math.inf], "score": -math.inf, "ok": "yes"}
"""


def test_nan_and_infinity_go_out_as_null_in_strict_json(tmp_path, serve):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": NON_FINITE})
    server = serve(bundle)
    server.wait_ready()
    response = server.client.post("/predict", json={})
    assert response.status_code == 200
    assert b"NaN" not in response.content and b"Infinity" not in response.content
    assert json.loads(response.content, parse_constant=lambda name: pytest.fail(f"{name} sent")) == {
        "predictions": [1.5, None, None], "score": None, "ok": "yes"}
    too_deep = server.client.post("/predict", json={"deep": True})
    assert too_deep.status_code == 500
    assert too_deep.json()["detail"] == "predict() returned a value nested too deeply to send as JSON"
    assert server.client.post("/predict", json={}).status_code == 200
    assert "NaN or infinity at $.predictions[1], $.predictions[2], $.score; sent as null" in server.stop()


SLEEPER = """
    import time

    class Model:
        def predict(self, body):
            time.sleep(body.get("sleep", 0))
            return {"slept": body.get("sleep", 0)}
"""


def test_a_hung_predict_gets_a_504_and_the_server_recycles_itself(tmp_path, serve):
    import concurrent.futures

    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": SLEEPER})
    server = serve(bundle, "--predict-timeout", "1")
    server.wait_ready()
    assert server.client.post("/predict", json={"sleep": 0.1}).json() == {"slept": 0.1}

    def call(body):
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(server.sock)), base_url="http://model") as client:
            return client.post("/predict", json=body, timeout=10)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        hung = pool.submit(call, {"sleep": 3600})
        time.sleep(0.3)
        waiting = pool.submit(call, {"sleep": 0})  # queued behind the hung one (concurrency 1)
        hung, waiting = hung.result(), waiting.result()
    assert hung.status_code == 504
    assert hung.json()["detail"] == "predict() did not return within 1 s; the replica is being restarted"
    assert waiting.status_code == 503 and waiting.headers["x-podium-not-run"] == "1"
    assert "did not run the call" in waiting.json()["detail"]
    assert server.proc.wait(5) == 4
    assert "predict() did not return within 1 s; restarting this replica" in server.stop()


STREAMING = """
    import time

    class Model:
        def load(self):
            pass

        def predict(self, body):
            if body.get("fail"):
                return self._failing()
            return self._chunks(body["n"])

        def _chunks(self, n):
            for i in range(n):
                yield {"token": i}
                time.sleep(0.2)

        def _failing(self):
            yield "first "
            raise RuntimeError("the generator broke")
"""


def test_a_generator_answer_is_sent_chunk_by_chunk(serve, tmp_path):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": STREAMING})
    server = serve(bundle)
    server.wait_ready()
    arrivals = []
    with server.client.stream("POST", "/predict", json={"n": 3}) as answer:
        assert answer.headers["transfer-encoding"] == "chunked"
        assert answer.headers["content-type"] == "application/x-ndjson"
        for line in answer.iter_lines():
            arrivals.append((time.monotonic(), json.loads(line)))
    assert [chunk for _, chunk in arrivals] == [{"token": 0}, {"token": 1}, {"token": 2}]
    assert arrivals[-1][0] - arrivals[0][0] > 0.3  # the first chunk came before the generator finished
    # The connection is kept and the next call works.
    assert server.client.post("/predict", json={"n": 1}).text == '{"token":0}\n'


def test_a_generator_that_raises_ends_its_stream_saying_so(serve, tmp_path):
    bundle = write_bundle(tmp_path / "b", {"flavor": "custom", "entrypoint": "model.py:Model"},
                          {"model.py": STREAMING})
    server = serve(bundle)
    server.wait_ready()
    answer = server.client.post("/predict", json={"fail": True})
    assert answer.status_code == 200
    assert answer.text == "first \n[podium] predict() raised RuntimeError: the generator broke\n"
    assert "RuntimeError: the generator broke" in server.stop()
