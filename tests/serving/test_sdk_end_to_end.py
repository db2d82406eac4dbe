"""The data scientist's path, end to end against a real Podium (uvicorn + Celery worker + sandboxes):
train a scikit-learn model in a plain Python process, ``podium.deploy`` it, call it with curl and
the key, deploy a second version, split traffic, and roll back with the ``podium`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser_fixtures import run_podium
from tests.conftest import key_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

TRAIN_AND_DEPLOY = """
import json, sys
from sklearn.datasets import load_iris
from sklearn.{module} import {estimator}

import podium

features, labels = load_iris(return_X_y=True)
model = {estimator}({params}).fit(features, labels)
podium.login(sys.argv[1], sys.argv[2])
deployment = podium.deploy(model, name="iris", description="{estimator} on iris")
print(json.dumps({{"version": deployment.version, "url": deployment.url,
                  "answer": deployment.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])}}))
"""


@pytest.fixture
def podium_stack(serving: Path, django_db_setup: Any) -> Iterator[str]:
    """Podium's web server and a Celery worker on the test database, with the test's sandbox supervisor."""
    env = {"PODIUM_VAR_DIR": str(serving), "PODIUM_ARTIFACTS_DIR": str(serving / "artifacts"),
           "PODIUM_DRAIN_S": "1"}
    with run_podium("sdk-end-to-end-server.log", env, worker=True) as url:
        yield url


def deploy_from_a_script(url: str, key: str, tmp_path: Path, module: str, estimator: str, params: str) -> dict:
    script = tmp_path / f"train_{estimator}.py"
    script.write_text(textwrap.dedent(TRAIN_AND_DEPLOY.format(module=module, estimator=estimator, params=params)))
    result = subprocess.run([sys.executable, str(script), url, key], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={k: v for k, v in os.environ.items() if not k.startswith("DJANGO")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "podium: load " in result.stderr  # the progress lines
    return json.loads(result.stdout.strip().splitlines()[-1])


def cli(url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podium", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PODIUM_URL": url, "PODIUM_API_KEY": key})


def curl(url: str, key: str, body: dict) -> tuple[dict, str]:
    result = subprocess.run(
        ["curl", "-s", "-D", "-", "-X", "POST", url, "-H", f"Authorization: Bearer {key}",
         "-H", "Content-Type: application/json", "-d", json.dumps(body)],
        capture_output=True, text=True, check=True, timeout=30,
    )
    head, _, payload = result.stdout.partition("\n\n")  # text mode turned \r\n into \n
    assert payload, result.stdout
    version = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                   if line.lower().startswith("x-podium-model-version"))
    return json.loads(payload), version


def test_train_deploy_call_split_and_roll_back(alice, acme, podium_stack, tmp_path):
    url = podium_stack
    key = key_for(alice, acme, ["deploy", "invoke", "read"])

    first = deploy_from_a_script(url, key, tmp_path, "linear_model", "LogisticRegression", "max_iter=500")
    assert first["version"] == 1 and first["answer"] == {"predictions": [0, 2]} or first["answer"] == [0, 2]
    body, version = curl(f"{url}/v1/models/iris/predict", key, {"inputs": [[5.1, 3.5, 1.4, 0.2]]})
    assert body == {"predictions": [0]} and version == "1"

    second = deploy_from_a_script(url, key, tmp_path, "tree", "DecisionTreeClassifier", "random_state=0")
    assert second["version"] == 2
    assert curl(f"{url}/v1/models/iris/predict", key, {"inputs": [[6.7, 3.0, 5.2, 2.3]]})[1] == "2"

    split = httpx.post(f"{url}/api/v1/workspaces/acme/models/iris/aliases/production",
                       json={"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]},
                       headers={"authorization": f"Bearer {key}"})
    assert split.status_code == 200, split.text
    seen = {curl(f"{url}/v1/models/iris/predict", key, {"inputs": [[5.1, 3.5, 1.4, 0.2]]})[1] for _ in range(30)}
    assert seen == {"1", "2"}

    versions = cli(url, key, "versions", "iris")
    assert versions.returncode == 0 and "production" in versions.stdout

    for _ in range(2):  # undo the split, then the rollout
        rolled = cli(url, key, "rollback", "iris")
        assert rolled.returncode == 0, rolled.stderr
    assert curl(f"{url}/v1/models/iris/predict", key, {"inputs": [[5.1, 3.5, 1.4, 0.2]]})[1] == "1"

    predicted = cli(url, key, "predict", "iris", json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}))
    assert predicted.returncode == 0 and json.loads(predicted.stdout) == {"predictions": [0]}
