"""End to end: upload a version, watch it deploy in a real sandbox, call it through the gateway,
roll out, split traffic, roll back, and see each failure named by its step."""

from __future__ import annotations

import httpx
import pytest
from rest_framework.test import APIClient

from tests.conftest import bearer, key_for
from tests.serving.conftest import custom_bundle, flush_calls, gateway
from webapp.asgi import application
from webapp.serving.models import Invocation, ModelVersion

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ECHO = """
    class Model:
        def load(self):
            self.greeting = open("greeting.txt").read().strip()

        def predict(self, body):
            return {"greeting": self.greeting, "you_sent": body}
"""


def upload(client: APIClient, name: str, bundle: bytes, **fields: str):
    import io

    data = {"bundle": io.BytesIO(bundle), **fields}
    data["bundle"].name = "bundle.tar.gz"
    return client.post(f"/api/v1/workspaces/acme/models/{name}/versions", data, format="multipart")


async def predict(key: str, path: str, json_body=None, **kwargs):
    async with gateway() as client:
        return await client.post(path, json=json_body, headers={"authorization": f"Bearer {key}"}, **kwargs)


def test_upload_deploys_and_serves(deployer, invoke_key, acme):
    response = upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hello"}))
    assert response.status_code == 201, response.content
    version = deployer.get("/api/v1/workspaces/acme/models/greeter/versions/1").json()
    assert version["status"] == "ready", version
    assert [s["status"] for s in version["steps"]] == ["done", "done", "done"]
    assert version["endpoint"].endswith("/v1/models/greeter/versions/1/predict")
    model = deployer.get("/api/v1/workspaces/acme/models/greeter").json()
    assert model["aliases"][0]["name"] == "production"
    assert model["aliases"][0]["routes"] == [{"version": 1, "weight": 100}]

    import asyncio

    answer = asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {"x": 1}))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"greeting": "hello", "you_sent": {"x": 1}}
    assert answer.headers["x-podium-model-version"] == "1"
    assert len(answer.headers["x-request-id"]) == 16
    by_version = asyncio.run(predict(invoke_key, "/v1/models/greeter/versions/1/predict", [1, 2]))
    assert by_version.json()["you_sent"] == [1, 2]

    flush_calls()
    call = Invocation.objects.get(request_id=answer.headers["x-request-id"])
    assert call.status_code == 200 and call.latency_ms > 0 and call.version.number == 1
    calls = deployer.get("/api/v1/workspaces/acme/models/greeter/calls").json()
    assert len(calls) == 2
    metrics = deployer.get("/api/v1/workspaces/acme/models/greeter/metrics").json()
    assert sum(row["requests"] for row in metrics["series"]) == 2
    logs = deployer.get("/api/v1/workspaces/acme/models/greeter/versions/1/logs").json()["lines"]
    assert any("ready" in line["text"] for line in logs)


def test_rollout_split_and_rollback(deployer, invoke_key):
    import asyncio

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "one"})).status_code == 201
    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "two"})).status_code == 201
    # The rollout moved production to v2; v1 stays warm for an instant rollback.
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {})).json()["greeting"] == "two"
    assert ModelVersion.objects.get(number=1).status == "ready"

    split = deployer.post("/api/v1/workspaces/acme/models/greeter/aliases/production",
                          {"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}, format="json")
    assert split.status_code == 200, split.content

    async def many() -> set[str]:
        seen = set()
        async with gateway() as client:
            for _ in range(40):
                r = await client.post("/v1/models/greeter/predict", json={},
                                      headers={"authorization": f"Bearer {invoke_key}"})
                seen.add(r.json()["greeting"])
        return seen

    assert asyncio.run(many()) == {"one", "two"}

    back = deployer.post("/api/v1/workspaces/acme/models/greeter/rollback", {}, format="json")
    assert back.status_code == 200 and back.json()["routes"] == [{"version": 2, "weight": 100}]
    # Rolling back again goes back one more change: to v1, from before the rollout.
    again = deployer.post("/api/v1/workspaces/acme/models/greeter/rollback", {}, format="json")
    assert again.status_code == 200 and again.json()["routes"] == [{"version": 1, "weight": 100}]
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {})).json()["greeting"] == "one"
    nothing = deployer.post("/api/v1/workspaces/acme/models/greeter/rollback", {}, format="json")
    assert nothing.status_code == 409 and "no earlier routing" in nothing.json()["detail"]
    staging = deployer.post("/api/v1/workspaces/acme/models/greeter/aliases/staging", {"version": 1}, format="json")
    assert staging.status_code == 200
    staged = asyncio.run(predict(invoke_key, "/v1/models/greeter/aliases/staging/predict", {}))
    assert staged.json()["greeting"] == "one"


def test_a_failing_load_names_the_step_and_keeps_the_old_version(deployer, invoke_key):
    import asyncio

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "still here"})).status_code == 201
    broken = custom_bundle("""
        import helpers


        class Model:
            def load(self):
                print("reading the weights")
                self.config = helpers.settings()

            def predict(self, body):
                return body
    """, **{"helpers.py": """
        def settings():
            return {}["inputs"]
    """})
    assert upload(deployer, "greeter", broken).status_code == 201
    version = deployer.get("/api/v1/workspaces/acme/models/greeter/versions/2").json()
    assert version["status"] == "failed" and version["failed_step"] == "load"
    error = version["error"]
    # The user's own error and where it happened lead; its traceback follows once, with only their frames.
    assert error.startswith("load() raised KeyError: 'inputs' (helpers.py:3)\n"), error
    assert error.count("Traceback (most recent call last)") == 1
    assert 'File "model.py", line 8, in load' in error and 'File "helpers.py", line 3, in settings' in error
    assert "model_server.py" not in error and "/code/" not in error and "importlib" not in error
    assert "Printed before it failed:\nreading the weights" in error
    answer = asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {}))
    assert answer.json()["greeting"] == "still here"


def test_requirements_that_cannot_install_fail_the_environment_step(deployer):
    bundle = custom_bundle(ECHO, requirements=["this-package-does-not-exist-podium==0.0.1"],
                           **{"greeting.txt": "x"})
    assert upload(deployer, "greeter", bundle).status_code == 201
    version = deployer.get("/api/v1/workspaces/acme/models/greeter/versions/1").json()
    assert version["status"] == "failed" and version["failed_step"] == "environment"
    assert "this-package-does-not-exist-podium" in version["error"]
    build = deployer.get("/api/v1/workspaces/acme/models/greeter/versions/1/logs?source=build").json()["lines"]
    assert build


def test_bad_bundles_are_refused_with_the_reason(deployer):
    not_tar = upload(deployer, "greeter", b"definitely not a tarball")
    assert not_tar.status_code == 400 and "gzip-compressed tar" in not_tar.json()["detail"]
    from tests.serving.conftest import bundle_bytes

    no_entry = upload(deployer, "greeter", bundle_bytes({"flavor": "custom"}, {"model.py": "x = 1"}))
    assert no_entry.status_code == 400 and "entrypoint" in no_entry.json()["detail"]
    bad_name = upload(deployer, "Not_A_Name", custom_bundle(ECHO))
    assert bad_name.status_code in (400, 404)


def test_gateway_errors_say_what_to_do(deployer, invoke_key, alice, acme):
    import asyncio

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    read_only = key_for(alice, acme, ["read"])

    async def calls():
        async with gateway() as client:
            auth = {"authorization": f"Bearer {invoke_key}"}
            yield await client.post("/v1/models/greeter/predict", content=b"a=b",
                                    headers={**auth, "content-type": "application/x-www-form-urlencoded"})
            yield await client.post("/v1/models/greeter/predict", content=b"x" * (11 << 20),
                                    headers={**auth, "content-type": "application/json"})
            yield await client.post("/v1/models/nothing/predict", json={}, headers=auth)
            yield await client.post("/v1/models/greeter/versions/9/predict", json={}, headers=auth)
            yield await client.get("/v1/models/greeter/predict", headers=auth)
            yield await client.post("/v1/models/greeter/predict", json={})
            yield await client.post("/v1/models/greeter/predict", json={},
                                    headers={"authorization": f"Bearer {read_only}"})

    async def collect():
        return [r async for r in calls()]

    unsupported, too_big, no_model, no_version, wrong_method, anonymous, read_only = asyncio.run(collect())
    assert unsupported.status_code == 415 and "JSON" in unsupported.json()["detail"]
    assert too_big.status_code == 413
    assert no_model.status_code == 404 and "no model named 'nothing'" in no_model.json()["detail"]
    assert no_version.status_code == 404 and "no version 9" in no_version.json()["detail"]
    assert wrong_method.status_code == 405
    assert anonymous.status_code == 401
    assert read_only.status_code == 403 and "'invoke' scope" in read_only.json()["detail"]


def test_another_workspaces_key_cannot_call_the_model(deployer, charlie):
    import asyncio

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    assert charlie.workspace is not None
    outsider = key_for(charlie, charlie.workspace, ["invoke"])
    theirs = asyncio.run(predict(outsider, "/v1/models/greeter/predict", {}))
    missing = asyncio.run(predict(outsider, "/v1/models/no-such-model/predict", {}))
    assert theirs.status_code == 404
    assert theirs.json()["detail"].replace("greeter", "X") == missing.json()["detail"].replace("no-such-model", "X")


def test_prometheus_metrics_count_calls(deployer, invoke_key, settings):
    import asyncio

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {})).status_code == 200

    async def scrape(headers=None):
        async with gateway() as client:
            return await client.get("/metrics", headers=headers or {})

    text = asyncio.run(scrape()).text
    assert 'podium_predictions_total{' in text and 'model="greeter"' in text and 'status="200"' in text
    assert "podium_prediction_latency_seconds_bucket" in text
    async def scrape_from_afar():
        transport = httpx.ASGITransport(app=application, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get("/metrics")

    assert asyncio.run(scrape_from_afar()).status_code == 401  # no token set: this host only
    settings.PODIUM_METRICS_TOKEN = "s3cret"
    assert asyncio.run(scrape()).status_code == 401
    assert asyncio.run(scrape({"authorization": "Bearer s3cret"})).status_code == 200


def test_revoking_a_key_stops_its_calls_at_once(deployer, alice, acme):
    import asyncio

    from webapp.lib import keys
    from webapp.workspaces.models import ApiKey

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    secret = key_for(alice, acme, ["invoke"])
    assert asyncio.run(predict(secret, "/v1/models/greeter/predict", {})).status_code == 200
    key_id = ApiKey.objects.get(key_hash=keys.digest(secret)).pk
    admin = bearer(key_for(alice, acme, ["admin"]))
    assert admin.delete(f"/api/v1/workspaces/acme/keys/{key_id}").status_code == 204
    after = asyncio.run(predict(secret, "/v1/models/greeter/predict", {}))
    assert after.status_code == 401 and "revoked" in after.json()["detail"]


def test_demoting_a_keys_owner_narrows_it_at_once(deployer, alice, acme, member_of):
    import asyncio

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    dev = member_of("dana", "developer")
    secret = key_for(dev, acme, ["invoke"])
    assert asyncio.run(predict(secret, "/v1/models/greeter/predict", {})).status_code == 200
    demoted = bearer(key_for(alice, acme, ["admin"])).patch(
        "/api/v1/workspaces/acme/members/dana", {"role": "viewer"}, format="json")
    assert demoted.status_code == 200
    refused = asyncio.run(predict(secret, "/v1/models/greeter/predict", {}))
    assert refused.status_code == 403
    # The key has the invoke scope: what it lacks is its owner's role.
    assert refused.json()["detail"] == "Your role (viewer) does not allow this: call model endpoints."


def test_another_process_hears_a_revocation_over_redis(deployer, alice, acme):
    import asyncio

    from webapp.workspaces import key_cache

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    secret = key_for(alice, acme, ["invoke"])

    async def scenario() -> tuple[bool, bool]:
        async with gateway() as client:
            headers = {"authorization": f"Bearer {secret}"}
            await client.post("/v1/models/greeter/predict", json={}, headers=headers)  # starts the listener
            await asyncio.sleep(0.3)
            cached_before = key_cache.peek(secret) is not None
            # What another process's announce() sends:
            import redis.asyncio as aioredis
            from django.conf import settings

            from webapp.core import invalidation

            await aioredis.Redis.from_url(settings.REDIS_URL).publish(invalidation.CHANNEL, b"keys")
            for _ in range(100):
                if key_cache.peek(secret) is None:
                    return cached_before, True
                await asyncio.sleep(0.01)
            return cached_before, False

    cached_before, forgotten = asyncio.run(scenario())
    assert cached_before and forgotten


def test_predict_errors_come_back_with_the_models_message(deployer, invoke_key):
    import asyncio

    moody = custom_bundle("""
        class Model:
            def predict(self, body):
                if body.get("mode") == "raise":
                    raise RuntimeError("the feature store is down")
                if body.get("mode") == "reject":
                    raise ValueError("age must be positive")
                if body.get("mode") == "object":
                    return {"when": object()}
                return {"ok": True}
    """)
    assert upload(deployer, "moody", moody).status_code == 201

    def call(mode: str):
        return asyncio.run(predict(invoke_key, "/v1/models/moody/predict", {"mode": mode}))

    raised, rejected, not_json, fine = call("raise"), call("reject"), call("object"), call("fine")
    assert raised.status_code == 500
    assert raised.json()["detail"] == "predict() raised RuntimeError: the feature store is down"
    assert rejected.status_code == 422 and "age must be positive" in rejected.json()["detail"]
    assert not_json.status_code == 500 and "not JSON" in not_json.json()["detail"]
    assert fine.status_code == 200 and fine.json() == {"ok": True}
    logs = deployer.get("/api/v1/workspaces/acme/models/moody/versions/1/logs?tail=100").json()["lines"]
    assert any("RuntimeError: the feature store is down" in line["text"] for line in logs)  # the traceback


def test_json_edge_cases_get_clear_answers_through_the_gateway(deployer, invoke_key):
    import asyncio
    import json

    odd = custom_bundle("""
        import math

        class Model:
            def predict(self, body):
                return {"score": math.nan, "upper": math.inf, "you_sent": body}
    """)
    assert upload(deployer, "odd", odd).status_code == 201
    deep = b"[" * 5000 + b"]" * 5000

    async def calls():
        async with gateway() as client:
            auth = {"authorization": f"Bearer {invoke_key}"}
            yield await client.post("/v1/models/odd/predict", content=deep,
                                    headers={**auth, "content-type": "application/json"})
            yield await client.post("/v1/models/odd/predict", content=b"{}",
                                    headers={**auth, "content-type": "APPLICATION/JSON"})
            yield await client.post("/v1/models/odd/predict", content=b"{}",
                                    headers={**auth, "content-type": "Application/Json ; charset=UTF-8"})

    async def collect():
        return [r async for r in calls()]

    too_deep, upper_case, with_parameters = asyncio.run(collect())
    assert too_deep.status_code == 400, too_deep.content
    assert "nests arrays and objects too deeply" in too_deep.json()["detail"]
    for answer in (upper_case, with_parameters):
        assert answer.status_code == 200, answer.content
        strict = json.loads(answer.content, parse_constant=lambda name: pytest.fail(f"{name} sent"))
        assert strict == {"score": None, "upper": None, "you_sent": {}}


def test_deleting_the_workspace_stops_its_model_servers(deployer, alice, acme):
    import time

    from sandbox import SandboxHandle, State, get_executor
    from tests.conftest import client_for

    assert upload(deployer, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hi"})).status_code == 201
    handle = SandboxHandle.model_validate(ModelVersion.objects.get(model__name="greeter").sandbox)
    assert get_executor().poll(handle).state == State.RUNNING

    response = client_for(alice).delete("/api/v1/workspaces/acme", {"confirm": "acme"}, format="json")

    assert response.status_code == 204
    deadline = time.monotonic() + 15
    while get_executor().poll(handle).state != State.STOPPED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_executor().poll(handle).state == State.STOPPED


@pytest.mark.parametrize("line", ["-r /etc/shadow", "pkg @ file:///srv/podium/artifacts/1/2/v1/code/bundle/pkg",
                                  "--index-url http://127.0.0.1:5432/simple", "../outside"])
def test_an_upload_with_a_requirement_that_reads_host_files_is_refused_naming_the_line(deployer, acme, line):
    response = upload(deployer, "sneaky", custom_bundle(ECHO, requirements=["numpy", line]))
    assert response.status_code == 400, response.content
    assert f"line 2 ({line!r})" in response.json()["detail"]
    assert not ModelVersion.objects.filter(model__name="sneaky").exists()


USES_BUNDLED_PACKAGE = """
    import mine

    class Model:
        def load(self):
            pass

        def predict(self, body):
            return {"from_my_package": mine.VALUE}
"""


def test_a_package_in_the_bundle_is_built_from_source_in_the_build_sandbox(deployer, invoke_key, acme):
    # setuptools comes from the package index through the build's index proxy; the build backend runs in the
    # build sandbox as this workspace's own build.
    pyproject = ("[build-system]\nrequires = ['setuptools>=61']\nbuild-backend = 'setuptools.build_meta'\n"
                 "[project]\nname = 'mine'\nversion = '1.0'\n")
    bundle = custom_bundle(USES_BUNDLED_PACKAGE, requirements=["./packages/mine"],
                           **{"packages/mine/pyproject.toml": pyproject,
                              "packages/mine/mine/__init__.py": "VALUE = 'built in the sandbox'\n"})
    response = upload(deployer, "bundled", bundle)
    assert response.status_code == 201, response.content
    version = deployer.get("/api/v1/workspaces/acme/models/bundled/versions/1").json()
    assert version["status"] == "ready", version
    import asyncio

    answer = asyncio.run(predict(invoke_key, "/v1/models/bundled/predict", {}))
    assert answer.json() == {"from_my_package": "built in the sandbox"}, answer.text
