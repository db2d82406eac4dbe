"""No page, API answer or log a member can read names this host's own paths: Podium's var dir and
checkout, the artifacts and environments directories, Podium's own virtualenv, the package index's files."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sandbox.environments import read_pip_config
from tests.serving.conftest import custom_bundle
from tests.serving.test_deploy import predict, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

FAILS_IN_A_LIBRARY = """
    import numpy


    class Model:
        def load(self):
            pass

        def predict(self, body):
            return {"mean": float(numpy.asarray(body["values"], dtype=float).mean())}
"""


def host_paths(serving_var: Path) -> list[str]:
    paths = {str(serving_var), str(ROOT), sys.prefix, str(Path(sys.executable).resolve().parent)}
    settings = read_pip_config()
    for key in ("find-links", "extra-index-url", "index-url", "constraint"):
        for item in settings.get(key, "").split():
            if item.startswith(("file:", "/")):
                paths.add(item.removeprefix("file://"))
    return sorted(p for p in paths if len(p) > 4)


def test_logs_and_pages_of_a_version_name_no_host_path(deployer, invoke_key, acme, serving, client, alice):
    assert upload(deployer, "averager", custom_bundle(FAILS_IN_A_LIBRARY, requirements=["numpy"])).status_code == 201
    version = deployer.get("/api/v1/workspaces/acme/models/averager/versions/1").json()
    assert version["status"] == "ready", version
    answer = asyncio.run(predict(invoke_key, "/v1/models/averager/predict", {"values": ["one", "two"]}))
    assert answer.status_code == 422
    seen = {"answer": answer.text}
    for source in ("build", "runtime"):
        lines = deployer.get(f"/api/v1/workspaces/acme/models/averager/versions/1/logs?source={source}&tail=500")
        seen[source] = "\n".join(line["text"] for line in lines.json()["lines"])
    assert "could not convert string to float" in seen["runtime"]  # the library's error is there...
    assert 'File "model.py"' in seen["runtime"]  # ...with the user's own frame
    seen["calls"] = deployer.get("/api/v1/workspaces/acme/models/averager/calls").text
    seen["version"] = deployer.get("/api/v1/workspaces/acme/models/averager/versions/1").text
    client.force_login(alice.user)
    seen["page"] = client.get("/w/acme/models/averager/versions/1").content.decode()
    for where, text in seen.items():
        for path in host_paths(serving):
            assert path not in text, f"{where} shows {path}:\n{text[max(0, text.find(path) - 200):][:400]}"


REPORTS_ITS_SANDBOX = """
    import os
    import sys


    class Model:
        def load(self):
            pass

        def predict(self, body):
            return {"environ": dict(os.environ), "prefix": sys.prefix, "path": sys.path, "cwd": os.getcwd()}
"""


def test_a_model_sees_no_host_path_in_its_own_sandbox(deployer, invoke_key, acme, serving):
    assert upload(deployer, "reporter", custom_bundle(REPORTS_ITS_SANDBOX, requirements=["numpy"])).status_code == 201
    answer = asyncio.run(predict(invoke_key, "/v1/models/reporter/predict", {}))
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["prefix"] == seen["environ"]["VIRTUAL_ENV"] == "/env"
    for path in host_paths(serving):
        assert path not in answer.text, f"the sandbox sees {path}: {answer.text}"
