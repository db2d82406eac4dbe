"""Reliability under load: rollouts and rollbacks drop nothing; a killed model server fails
calls fast and is back within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import psutil
import pytest

from sandbox import SandboxHandle, State, get_executor
from tests.conftest import SUPERVISOR, bearer, client_for, key_for
from tests.serving.conftest import bundle_bytes, custom_bundle, flush_calls, gateway
from tests.serving.test_deploy import ECHO, upload
from webapp.serving.models import Invocation, ModelVersion

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@dataclass
class Load:
    """A client calling the production alias continuously from its own thread."""

    key: str
    results: list[tuple[float, int, float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self, concurrency: int = 4) -> threading.Thread:
        thread = threading.Thread(target=lambda: asyncio.run(self._run(concurrency)), daemon=True)
        thread.start()
        return thread

    async def _run(self, concurrency: int) -> None:
        async with gateway() as client:
            async def worker() -> None:
                while not self.stop.is_set():
                    started = time.monotonic()
                    response = await client.post("/v1/models/greeter/predict", json={},
                                                 headers={"authorization": f"Bearer {self.key}"})
                    answer = response.json().get("greeting", response.json().get("detail", ""))
                    self.results.append((started, response.status_code, time.monotonic() - started, answer))
                    # An in-process ASGI call may complete without ever yielding to the event loop; a real
                    # client waits on its socket. Yield here so the gateway's own tasks get to run.
                    await asyncio.sleep(0)

            await asyncio.gather(*(worker() for _ in range(concurrency)))


def test_rollout_and_rollback_under_load_drop_nothing(alice, acme, serving, settings):
    settings.PODIUM_DRAIN_S = 5
    deployer = bearer(key_for(alice, acme, ["deploy", "invoke", "read"]))
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "one"})).status_code == 201
    load = Load(key_for(alice, acme, ["invoke"]))
    thread = load.start()
    time.sleep(0.5)
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "two"})).status_code == 201
    time.sleep(0.5)
    assert deployer.post("/api/v1/workspaces/acme/models/greeter/rollback", {}, format="json").status_code == 200
    time.sleep(0.5)
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "three"})).status_code == 201
    time.sleep(0.5)
    load.stop.set()
    thread.join(10)
    statuses = [status for _, status, _, _ in load.results]
    assert len(statuses) > 50
    assert set(statuses) == {200}, [r for r in load.results if r[1] != 200][:5]
    answers = [answer for *_, answer in load.results]
    assert {"one", "two", "three"} <= set(answers)
    assert answers[-1] == "three"


def model_server_pids() -> list[int]:
    """The model server interpreters started by this suite's supervisor (not the setpriv/bwrap launchers
    that carry the same arguments)."""
    supervisor = psutil.Process(SUPERVISOR["pid"])
    pids = []
    for proc in supervisor.children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if len(cmdline) > 1 and "python" in os.path.basename(cmdline[0]) and cmdline[1].endswith("model_server.py"):
            pids.append(proc.pid)
    return pids


def test_a_killed_model_server_fails_fast_and_comes_back(alice, acme, serving):
    deployer = bearer(key_for(alice, acme, ["deploy", "invoke", "read"]))
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "alive"})).status_code == 201
    pids = model_server_pids()
    assert len(pids) == 1
    load = Load(key_for(alice, acme, ["invoke"]))
    thread = load.start()
    time.sleep(0.5)
    killed_at = time.monotonic()
    os.kill(pids[0], signal.SIGKILL)
    # Wait for the first success after the kill, at most 10 s.
    deadline = killed_at + 10
    while time.monotonic() < deadline:
        after = [r for r in load.results if r[0] > killed_at + 0.05 and r[1] == 200]
        if after:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    load.stop.set()
    thread.join(10)
    failures = [r for r in load.results if r[1] != 200]
    recovered = min((r[0] for r in load.results if r[0] > killed_at and r[1] == 200), default=None)
    assert recovered is not None, "the model never answered again"
    assert recovered - killed_at < 5.0, f"back after {recovered - killed_at:.1f}s"
    assert all(status in (502, 503) for _, status, _, _ in failures), {r[1] for r in failures}
    assert all(latency < 1.0 for _, _, latency, _ in failures), max(r[2] for r in failures)
    assert load.results[-1][1] == 200
    assert model_server_pids() and model_server_pids() != pids


def failovers() -> float:
    from webapp.serving.gateway import FAILOVERS

    return FAILOVERS._value.get()


async def burst(key: str, calls: int, concurrency: int = 8) -> list[tuple[int, str]]:
    results: list[tuple[int, str]] = []
    async with gateway() as client:
        async def worker(count: int) -> None:
            for _ in range(count):
                response = await client.post("/v1/models/greeter/predict", json={},
                                             headers={"authorization": f"Bearer {key}"})
                results.append((response.status_code, response.json().get("detail", "")))
                await asyncio.sleep(0)

        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return results


def two_replicas(alice, acme) -> str:
    deployer = bearer(key_for(alice, acme, ["deploy", "invoke", "read"]))
    manifest = {"flavor": "custom", "entrypoint": "model.py:Model", "replicas": 2}
    bundle = bundle_bytes(manifest, {"model.py": ECHO, "greeting.txt": "two of us"})
    assert upload(deployer, "greeter", bundle).status_code == 201
    key = key_for(alice, acme, ["invoke"])
    # Both replicas are in the cached route and the gateway holds idle connections to both.
    assert {status for status, _ in asyncio.run(burst(key, 16))} == {200}
    return key


def kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(5)


def test_a_call_a_dead_replica_refuses_goes_to_the_other_one(alice, acme, serving):
    key = two_replicas(alice, acme)
    pids = model_server_pids()
    assert len(pids) == 2
    before = failovers()
    kill(pids[:1])
    results = asyncio.run(burst(key, 400))
    assert len(results) == 400
    assert [r for r in results if r[0] != 200] == []
    # The dead replica was offered calls (the route still named it) and refused them.
    assert failovers() > before, "no call was handed to the killed replica"


def test_it_answers_502_only_when_no_replica_can_take_the_call(alice, acme, serving):
    key = two_replicas(alice, acme)
    kill(model_server_pids())
    status, detail = asyncio.run(burst(key, 1, concurrency=1))[0]
    assert status in (502, 503), detail
    if status == 502:
        assert "No replica of this version could take the call (2 tried" in detail
    # The call records a tenant reads name no host socket path.
    flush_calls()
    errors = list(Invocation.objects.exclude(error="").values_list("error", flat=True))
    assert errors and not [e for e in errors if "unix:" in e or "/sock" in e or str(serving) in e], errors


HUNGRY = """
    class Model:
        def predict(self, body):
            if body.get("eat_mib"):
                hoard = [bytearray(1 << 20) for _ in range(body["eat_mib"])]
                return {"ate": len(hoard)}
            return {"ok": True}
"""


def test_a_model_killed_for_memory_names_its_memory_limit_to_the_caller(alice, acme, serving):
    deployer = bearer(key_for(alice, acme, ["deploy", "invoke", "read"]))
    manifest = {"flavor": "custom", "entrypoint": "model.py:Model", "resources": {"memory_mib": 128}}
    assert upload(deployer, "greeter", bundle_bytes(manifest, {"model.py": HUNGRY})).status_code == 201
    key = key_for(alice, acme, ["invoke"])

    async def call(body):
        async with gateway() as client:
            return await client.post("/v1/models/greeter/predict", json=body,
                                     headers={"authorization": f"Bearer {key}"})

    assert asyncio.run(call({})).status_code == 200
    answer = asyncio.run(call({"eat_mib": 1024}))
    assert answer.status_code == 502
    detail = answer.json()["detail"]
    assert "memory limit: the sandbox used more than its 128 MiB of memory and was killed" in detail, detail
    assert "unix:" not in detail and "/sock/" not in detail
    # The version's page says so too, once the replica is back.
    version = ModelVersion.objects.get(model__name="greeter", number=1)
    deadline = time.monotonic() + 20
    while get_executor().poll(SandboxHandle.model_validate(version.sandbox)).replicas[0].state != State.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page = client_for(alice).get("/w/acme/models/greeter/versions/1")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-testid="replica-restarts"' in text
    assert ("Replica 0, 1 restart; the last time: memory limit: the sandbox used more than its 128 MiB of memory "
            "and was killed") in text, text[text.find("replica-restarts"):][:600]


SLEEPER = """
    import time

    class Model:
        def predict(self, body):
            time.sleep(body.get("sleep", 0))
            return {"greeting": "awake"}
"""


def test_a_hung_predict_is_cut_off_and_the_calls_behind_it_go_elsewhere(alice, acme, serving, settings):
    settings.PODIUM_PREDICT_TIMEOUT_S = 2
    deployer = bearer(key_for(alice, acme, ["deploy", "invoke", "read"]))
    manifest = {"flavor": "custom", "entrypoint": "model.py:Model", "replicas": 2}
    assert upload(deployer, "greeter", bundle_bytes(manifest, {"model.py": SLEEPER})).status_code == 201
    key = key_for(alice, acme, ["invoke"])
    assert {status for status, _ in asyncio.run(burst(key, 8))} == {200}

    async def calls():
        async with gateway() as client:
            async def call(body):
                started = time.monotonic()
                response = await client.post("/v1/models/greeter/predict", json=body,
                                             headers={"authorization": f"Bearer {key}"})
                return response.status_code, response.json(), time.monotonic() - started

            hung = asyncio.ensure_future(call({"sleep": 3600}))
            await asyncio.sleep(0.3)
            behind = [asyncio.ensure_future(call({})) for _ in range(6)]  # some queue behind the hung call
            return await hung, await asyncio.gather(*behind)

    (status, answer, took), behind = asyncio.run(calls())
    assert status == 504, answer
    assert answer["detail"] == "predict() did not return within 2 s; the replica is being restarted"
    assert took < 2 + 1.5
    assert [s for s, _, _ in behind] == [200] * 6, behind
    # The recycled replica comes back and serves again.
    version = ModelVersion.objects.get(model__name="greeter", number=1)
    deadline = time.monotonic() + 20
    while get_executor().poll(SandboxHandle.model_validate(version.sandbox)).restarts < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    logs = deployer.get("/api/v1/workspaces/acme/models/greeter/versions/1/logs?tail=200").json()["lines"]
    assert any("predict() did not return within 2 s; restarting this replica" in line["text"] for line in logs)
    deadline = time.monotonic() + 20
    while len(get_executor().addresses(SandboxHandle.model_validate(version.sandbox))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.1)  # the route refreshes
    assert {status for status, _ in asyncio.run(burst(key, 16))} == {200}
