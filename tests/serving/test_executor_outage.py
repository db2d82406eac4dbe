"""A control-plane outage is not a prediction outage: while the executor cannot be reached, the gateway
keeps serving with the replicas' last known addresses, and /healthz says "degraded", not "down"."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.test import Client

from sandbox import get_executor
from sandbox.protocol import Client as SupervisorClient
from tests.serving.conftest import custom_bundle
from tests.serving.test_deploy import ECHO, predict, upload
from webapp.serving import routing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_predictions_answer_while_the_executor_cannot_be_reached(deployer, invoke_key, tmp_path,  # noqa: F811
                                                                 monkeypatch):
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    first = asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {"x": 1}))
    assert first.status_code == 200, first.text

    # The supervisor stops answering (its socket is elsewhere now); the model servers run on.
    executor = get_executor()
    monkeypatch.setattr(executor, "client", SupervisorClient(tmp_path / "no-supervisor.sock", timeout=1))
    assert not executor.health()[0]
    routing.invalidate(0, "")  # nothing cached for workspace 0; the acme route goes stale by its TTL
    time.sleep(routing.TTL + 0.1)
    statuses = []
    for _ in range(10):  # each refresh fails; the stale addresses keep serving
        statuses.append(asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {"x": 2})).status_code)
        time.sleep(0.15)
    routing._cache.clear()  # even with the route forgotten (an alias moved, say), the last addresses hold
    statuses.append(asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {"x": 3})).status_code)
    assert statuses == [200] * 11

    health = Client().get("/healthz")
    monkeypatch.undo()  # the supervisor answers again (and the clean-up can stop the version)
    assert health.status_code == 200
    assert health.json()["status"] == "degraded" and health.json()["degraded"] == ["executor"]
