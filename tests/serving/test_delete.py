"""Deleting a model or a version: serving stops, the replicas and the files go, the audit log says who."""

from __future__ import annotations

import asyncio

import pytest

from tests.serving.conftest import custom_bundle
from tests.serving.test_deploy import ECHO, predict, upload
from webapp.serving import actions
from webapp.serving.models import Invocation, Model, ModelVersion
from webapp.workspaces.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ANSWER = custom_bundle(ECHO, **{"greeting.txt": "hello"})


def _sandbox_state(version: ModelVersion) -> str:
    from sandbox import SandboxHandle, get_executor

    return get_executor().poll(SandboxHandle.model_validate(version.sandbox)).state.value


def test_a_version_that_takes_traffic_is_not_deleted(deployer, acme):
    assert upload(deployer, "greeter", ANSWER).status_code == 201
    response = deployer.delete("/api/v1/workspaces/acme/models/greeter/versions/1")
    assert response.status_code == 409
    assert "still takes traffic" in response.json()["detail"]
    assert ModelVersion.objects.filter(model__name="greeter", number=1).exists()


def test_deleting_a_version_stops_it_and_removes_its_files(deployer, invoke_key, acme):
    assert upload(deployer, "greeter", ANSWER).status_code == 201
    assert upload(deployer, "greeter", ANSWER).status_code == 201  # v2 takes production; v1 stays warm
    old = ModelVersion.objects.get(model__name="greeter", number=1)
    directory = actions.version_dir(old)
    assert directory.is_dir() and _sandbox_state(old) == "running"
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/versions/1/predict", {})).status_code == 200

    assert deployer.delete("/api/v1/workspaces/acme/models/greeter/versions/1").status_code == 204
    assert deployer.get("/api/v1/workspaces/acme/models/greeter/versions/1").status_code == 404
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/versions/1/predict", {})).status_code == 404
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {})).status_code == 200
    for _ in range(100):  # the sandbox stops and the files go right after the commit
        if not directory.exists() and _sandbox_state(old) == "stopped":
            break
        asyncio.run(asyncio.sleep(0.05))
    assert not directory.exists()
    assert _sandbox_state(old) == "stopped"
    event = AuditEvent.objects.get(action="model.version_delete")
    assert event.data == {"number": 1} and event.actor.username == "alice"


def test_deleting_a_model_stops_serving_at_once_and_removes_everything(deployer, invoke_key, acme):
    assert upload(deployer, "greeter", ANSWER).status_code == 201
    version = ModelVersion.objects.get(model__name="greeter", number=1)
    assert asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {})).status_code == 200
    from tests.serving.conftest import flush_calls

    flush_calls()
    assert Invocation.objects.filter(model__name="greeter").exists()
    model_dir = actions.version_dir(version).parent

    assert deployer.delete("/api/v1/workspaces/acme/models/greeter").status_code == 204
    answer = asyncio.run(predict(invoke_key, "/v1/models/greeter/predict", {}))
    assert answer.status_code == 404, answer.text
    assert deployer.get("/api/v1/workspaces/acme/models/greeter").status_code == 404
    assert not Model.objects.filter(name="greeter").exists()
    assert not Invocation.objects.filter(model__name="greeter").exists()
    for _ in range(100):
        if not model_dir.exists() and _sandbox_state(version) == "stopped":
            break
        asyncio.run(asyncio.sleep(0.05))
    assert not model_dir.exists()
    assert _sandbox_state(version) == "stopped"
    assert AuditEvent.objects.get(action="model.delete").data == {"versions": 1}
    # The name is free again: a new upload starts at version 1.
    assert upload(deployer, "greeter", ANSWER).json()["number"] == 1


def test_the_model_page_deletes_only_when_the_name_is_typed(client, alice, acme, serving):
    from tests.conftest import bearer, key_for

    deployer = bearer(key_for(alice, acme, ["deploy", "read"]))
    assert upload(deployer, "greeter", ANSWER).status_code == 201
    client.force_login(alice.user)
    page = client.get("/w/acme/models/greeter")
    assert b'data-testid="delete-model-form"' in page.content
    refused = client.post("/w/acme/models/greeter/delete", {"confirm": "greet"}, follow=True)
    assert b"Type the model&#x27;s name, greeter, to delete it." in refused.content
    assert Model.objects.filter(name="greeter").exists()
    done = client.post("/w/acme/models/greeter/delete", {"confirm": "greeter"}, follow=True)
    assert done.redirect_chain[-1][0] == "/w/acme/models"
    assert b"Deleted greeter and its versions." in done.content
    assert not Model.objects.filter(name="greeter").exists()
    audit = client.get("/w/acme/audit?object_type=model").content.decode()
    assert "deleted the model greeter and its 1 version" in audit
    assert "uploaded greeter v1" not in audit  # a version's event, not the model's
    assert "uploaded greeter v1" in client.get("/w/acme/audit?object_type=modelversion").content.decode()
    assert "rolled greeter’s production out to v1" in audit


def test_a_viewer_cannot_delete_from_the_page(client, acme, member_of, serving, alice):
    from tests.conftest import bearer, key_for

    assert upload(bearer(key_for(alice, acme, ["deploy", "read"])), "greeter", ANSWER).status_code == 201
    viewer = member_of("vic", "viewer")
    client.force_login(viewer.user)
    assert b"delete-model-form" not in client.get("/w/acme/models/greeter").content
    assert client.post("/w/acme/models/greeter/delete", {"confirm": "greeter"}).status_code == 403
    assert Model.objects.filter(name="greeter").exists()


def test_calls_waiting_to_be_recorded_survive_their_version_being_deleted(acme, alice):
    from webapp.serving import recorder

    model = Model.objects.create(workspace=acme, name="gone")
    keep = ModelVersion.objects.create(workspace=acme, model=model, number=1, flavor="custom", manifest={},
                                       bundle_sha256="0" * 64, bundle_size=1, status="ready")
    doomed = ModelVersion.objects.create(workspace=acme, model=model, number=2, flavor="custom", manifest={},
                                         bundle_sha256="0" * 64, bundle_size=1, status="ready")
    other = Model.objects.create(workspace=acme, name="other")
    recorder.flush()
    for version, request_id in ((keep, "a"), (doomed, "b")):
        recorder.record(workspace_id=acme.pk, model_id=model.pk, version_id=version.pk, request_id=request_id,
                        status_code=200, latency_ms=1.0, request_bytes=2, response_bytes=2)
    recorder.record(workspace_id=acme.pk, model_id=other.pk, version_id=None, request_id="c", status_code=200,
                    latency_ms=1.0, request_bytes=2, response_bytes=2)
    ModelVersion.objects.filter(pk=doomed.pk).delete()
    assert recorder.flush() == 3
    assert dict(Invocation.objects.filter(request_id__in="abc").values_list("request_id", "version_id")) == {
        "a": keep.pk, "b": None, "c": None}


def test_a_stopped_or_failed_version_answers_410_saying_so(deployer, invoke_key, acme):
    assert upload(deployer, "greeter", ANSWER).status_code == 201
    assert upload(deployer, "greeter", ANSWER).status_code == 201
    assert deployer.post("/api/v1/workspaces/acme/models/greeter/versions/1/stop").status_code == 200
    answer = asyncio.run(predict(invoke_key, "/v1/models/greeter/versions/1/predict", {}))
    assert answer.status_code == 410, answer.text
    assert answer.json()["detail"].startswith("Version 1 of 'greeter' is stopped.")
    assert "retry-after" not in answer.headers
    broken = custom_bundle("class Model:\n    def load(self):\n        raise RuntimeError('no')\n\n"
                           "    def predict(self, body):\n        return body\n")
    assert upload(deployer, "greeter", broken).status_code == 201
    failed = asyncio.run(predict(invoke_key, "/v1/models/greeter/versions/3/predict", {}))
    assert failed.status_code == 410
    assert "failed to deploy (at its load step)" in failed.json()["detail"]
