"""A Truss deployed through the API and called through the gateway: its environment variables reach the
model server, predict_concurrency runs calls side by side, and a predict() that yields streams its chunks."""

from __future__ import annotations

import asyncio
import textwrap

import podium
import pytest
from podium.bundle import make_tarball

from tests.conftest import bearer, key_for
from tests.serving.conftest import gateway
from tests.serving.test_deploy import upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CONFIG = """
environment_variables:
  GREETING: Hello
runtime:
  predict_concurrency: 3
"""

MODEL = """
import asyncio
import os
import time


class Model:
    def __init__(self, **kwargs):
        self._config = kwargs["config"]

    def load(self):
        pass

    async def predict(self, model_input):
        if model_input.get("stream"):
            return self._words(model_input["name"])
        started = time.time()
        await asyncio.sleep(0.4)
        return {"greeting": f"{os.environ['GREETING']} {model_input['name']}", "started": started,
                "ended": time.time(), "concurrency": self._config["runtime"]["predict_concurrency"]}

    def _words(self, name):
        for word in (os.environ["GREETING"], ", ", name):
            yield word
"""


@pytest.fixture
def truss_bundle(tmp_path):
    root = tmp_path / "hello-truss"
    (root / "model").mkdir(parents=True)
    (root / "config.yaml").write_text(textwrap.dedent(CONFIG))
    (root / "model" / "model.py").write_text(MODEL)
    bundle = podium.build(root, tmp_path / "bundle")
    tarball = tmp_path / "bundle.tar.gz"
    make_tarball(bundle.root, tarball)
    return tarball.read_bytes()


async def call(key: str, body: dict) -> tuple[int, str, dict]:
    async with gateway() as client:
        answer = await client.post("/v1/models/hello-truss/predict", json=body,
                                   headers={"authorization": f"Bearer {key}"})
        return answer.status_code, answer.headers["content-type"], answer


def test_a_truss_runs_with_its_environment_concurrency_and_streaming(alice, acme, serving, truss_bundle):
    deployer = bearer(key_for(alice, acme, ["deploy", "read"]))
    assert upload(deployer, "hello-truss", truss_bundle).status_code == 201
    version = deployer.get("/api/v1/workspaces/acme/models/hello-truss/versions/1").json()
    assert version["status"] == "ready", version
    key = key_for(alice, acme, ["invoke"])

    async def three_at_once():
        return await asyncio.gather(*(call(key, {"name": n}) for n in ("Ada", "Grace", "Edsger")))

    answers = [a.json() for _, _, a in asyncio.run(three_at_once())]
    assert sorted(a["greeting"] for a in answers) == ["Hello Ada", "Hello Edsger", "Hello Grace"]
    assert answers[0]["concurrency"] == 3
    # The three calls ran side by side: each started before any of them ended.
    assert max(a["started"] for a in answers) < min(a["ended"] for a in answers), answers

    status, content_type, streamed = asyncio.run(call(key, {"name": "Ada", "stream": True}))
    assert status == 200 and content_type.startswith("text/plain")
    assert streamed.text == "Hello, Ada"
