"""Test runs and deploys from the editor, in real sandboxes: templates end to end, the failing
line of an exception, the wall-time limit, live output over the websocket."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from tests.conftest import client_for
from webapp.asgi import application
from webapp.serving.models import ModelVersion

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BASE = "/api/v1/workspaces/acme/models"
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def create(person: Any, name: str, template: str) -> dict[str, Any]:
    client = client_for(person)
    assert client.post(BASE, {"name": name, "template": template}, format="json").status_code == 201
    return client.get(f"{BASE}/{name}/source").json()


def start(person: Any, name: str, files: dict[str, str], sample_input: Any) -> str:
    response = client_for(person).post(f"{BASE}/{name}/test-runs", {"files": files, "sample_input": sample_input},
                                       format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    return str(response.json()["id"])


def wait(person: Any, name: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
    client = client_for(person)
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"{BASE}/{name}/test-runs/{run_id}").json()
        if body["status"] in ("passed", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def texts(run: dict[str, Any]) -> str:
    return "\n".join(line["text"] for line in run["output"])


def test_the_sklearn_template_passes_and_a_warm_run_is_fast(alice, acme, sandboxes):
    source = create(alice, "iris", "sklearn")
    first = wait(alice, "iris", start(alice, "iris", source["files"], source["sample_input"]))
    assert first["status"] == "passed", texts(first)
    assert first["result"]["answer"]["predictions"] == ["setosa", "virginica"]
    assert first["environment_cached"] is False and first["failed_step"] is None and first["error"] is None
    assert any(line["stream"] == "build" for line in first["output"])
    started = time.monotonic()
    warm = wait(alice, "iris", start(alice, "iris", source["files"], source["sample_input"]))
    seconds = time.monotonic() - started
    assert warm["status"] == "passed" and warm["environment_cached"] is True, texts(warm)
    assert warm["result"]["load_ms"] > 0 and warm["result"]["predict_ms"] > 0
    print(f"\nwarm sklearn test run, POST to result: {seconds:.2f} s "
          f"(load {warm['result']['load_ms']:.0f} ms, predict {warm['result']['predict_ms']:.1f} ms)")
    assert seconds < 5
    # Click to the first line of output, on the warm path (the run starts in a thread, no queue).
    started = time.monotonic()
    run_id = start(alice, "iris", source["files"], source["sample_input"])
    client = client_for(alice)
    while not client.get(f"{BASE}/iris/test-runs/{run_id}").json()["output"]:
        time.sleep(0.005)
    first_line = time.monotonic() - started
    print(f"warm sklearn test run, POST to first output line: {first_line:.2f} s")
    assert wait(alice, "iris", run_id)["status"] == "passed"


def test_the_pytorch_template_passes(alice, acme, sandboxes):
    source = create(alice, "tiny", "pytorch")
    run = wait(alice, "tiny", start(alice, "tiny", source["files"], source["sample_input"]), timeout=600)
    assert run["status"] == "passed", texts(run)[-3000:]
    answer = run["result"]["answer"]
    assert len(answer["predictions"]) == 2 and all(abs(sum(p) - 1) < 1e-3 for p in answer["probabilities"])


def test_the_custom_template_passes_and_remembers_the_sample_input(alice, acme, sandboxes):
    source = create(alice, "words", "custom")
    sample = {"text": "Support was helpful and fast"}
    run = wait(alice, "words", start(alice, "words", source["files"], sample))
    assert run["status"] == "passed", texts(run)
    assert run["result"]["answer"] == {"label": "positive", "score": 2}
    assert client_for(alice).get(f"{BASE}/words/source").json()["sample_input"] == sample


def test_a_failing_predict_names_the_line_in_model_py(alice, acme, sandboxes):
    create(alice, "broken", "custom")
    code = ("class Model:\n"
            "    def load(self):\n"
            "        print('loading now')\n"
            "\n"
            "    def predict(self, body):\n"
            "        return body['x'] / 0\n")
    run = wait(alice, "broken", start(alice, "broken", {"model.py": code}, {"x": 1}))
    assert run["status"] == "failed" and run["failed_step"] == "predict"
    error = run["error"]
    assert error["type"] == "ZeroDivisionError" and error["message"] == "division by zero"
    assert error["path"] == "model.py" and error["line"] == 6
    assert 'model.py", line 6, in predict' in error["traceback"]
    assert "loading now" in texts(run)


def test_a_failing_load_names_the_line_of_a_syntax_error(alice, acme, sandboxes):
    create(alice, "typo", "custom")
    files = {"model.py": "from helpers import scale\n\nclass Model:\n    def predict(self, body):\n"
                         "        return scale(body)\n",
             "helpers.py": "def scale(x):\n    return x *\n"}
    run = wait(alice, "typo", start(alice, "typo", files, {}))
    assert run["status"] == "failed" and run["failed_step"] == "load"
    assert run["error"]["type"] == "SyntaxError"
    assert (run["error"]["path"], run["error"]["line"]) == ("helpers.py", 2)


def test_a_run_over_the_wall_time_limit_is_stopped(alice, acme, sandboxes, settings):
    settings.PODIUM_IDE_TEST_WALL_S = 2
    create(alice, "sleepy", "custom")
    code = "import time\n\nclass Model:\n    def load(self):\n        time.sleep(60)\n\n" \
           "    def predict(self, body):\n        return 1\n"
    started = time.monotonic()
    run = wait(alice, "sleepy", start(alice, "sleepy", {"model.py": code}, {}))
    assert time.monotonic() - started < 30
    assert run["status"] == "failed" and run["failed_step"] == "limit"
    assert run["error"]["type"] == "LimitExceeded" and "time" in run["error"]["message"]


def test_a_broken_requirement_fails_the_environment_step(alice, acme, sandboxes):
    source = create(alice, "nopkg", "custom")
    files = {**source["files"], "requirements.txt": "no-such-package-podium-test==0.0.1\n"}
    run = wait(alice, "nopkg", start(alice, "nopkg", files, {"text": "x"}))
    assert run["status"] == "failed" and run["failed_step"] == "environment"
    assert "no-such-package-podium-test" in run["error"]["message"]


@sync_to_async
def _cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


async def _listen(path: str, cookie: bytes) -> tuple[bool, list[dict[str, Any]], Any]:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, (b"cookie", cookie)])
    connected, code = await communicator.connect(timeout=10)
    messages: list[dict[str, Any]] = []
    if connected:
        while True:
            message = await communicator.receive_output(timeout=60)
            if message["type"] == "websocket.close":
                break
            messages.append(__import__("json").loads(message["text"]))
    return connected, messages, code


def test_output_streams_over_the_websocket_to_members_only(alice, acme, charlie, sandboxes):
    create(alice, "chatty", "custom")
    code = ("import time\n\nclass Model:\n    def load(self):\n        for i in range(3):\n"
            "            print(f'step {i}')\n            time.sleep(0.2)\n\n"
            "    def predict(self, body):\n        return {'ok': True}\n")
    run_id = start(alice, "chatty", {"model.py": code}, {})
    path = f"/ws/workspaces/acme/models/chatty/test-runs/{run_id}"
    connected, messages, _ = async_to_sync(_listen)(path, async_to_sync(_cookie)(alice.user))
    assert connected
    lines = [m["line"]["text"] for m in messages if m["event"] == "line"]
    assert [t for t in lines if t.startswith("step ")] == ["step 0", "step 1", "step 2"]
    final = [m for m in messages if m["event"] == "status"][-1]
    assert final["status"] == "passed" and final["result"]["answer"] == {"ok": True}
    # The whole output was kept on the run, in the same order.
    stored = wait(alice, "chatty", run_id)
    assert [line["text"] for line in stored["output"]] == lines
    connected, _, code = async_to_sync(_listen)(path, async_to_sync(_cookie)(charlie.user))
    assert not connected and code == 4403


def test_a_deploy_from_the_editor_reaches_ready(alice, acme, sandboxes):
    create(alice, "greeter", "custom")
    client = client_for(alice)
    response = client.post(f"{BASE}/greeter/deploy", {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1 and body["flavor"] == "custom"
    version = ModelVersion.objects.get(model__name="greeter", number=1)
    assert version.status == "ready", version.error
    assert version.manifest["entrypoint"] == "model.py:Model"
    assert client.get(f"{BASE}/greeter").json()["aliases"][0]["name"] == "production"
    # Edited files (not saved) deploy as the next version.
    files = {"model.py": "class Model:\n    def predict(self, body):\n        return {'echo': body}\n"}
    second = client.post(f"{BASE}/greeter/deploy", {"files": files}, format="json")
    assert second.status_code == 201 and second.json()["number"] == 2
    assert ModelVersion.objects.get(model__name="greeter", number=2).status == "ready"


def test_the_zero_shot_template_passes(alice, acme, sandboxes):
    source = create(alice, "triage", "zero-shot")
    started = time.monotonic()
    run = wait(alice, "triage", start(alice, "triage", source["files"], source["sample_input"]), timeout=900)
    assert run["status"] == "passed", texts(run)[-3000:]
    assert run["result"]["answer"]["label"] == "billing"
    print(f"\nzero-shot first test run (environment build included): {time.monotonic() - started:.1f} s, "
          f"load {run['result']['load_ms']:.0f} ms")
