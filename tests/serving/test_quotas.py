"""Per-workspace quotas: a deploy or test run past one is refused naming it; usage is on the settings page."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from tests.conftest import bearer, key_for
from tests.serving.conftest import bundle_bytes
from webapp.ide.models import TestRun
from webapp.serving.models import Model, ModelVersion

pytestmark = pytest.mark.django_db

SOURCE = "class Model:\n    def load(self):\n        pass\n\n    def predict(self, body):\n        return body\n"


def bundle(memory_mib: int = 512, replicas: int = 1, cpu: float = 1.0, gpus: int = 0) -> bytes:
    manifest = {"flavor": "custom", "entrypoint": "model.py:Model", "requirements": [], "replicas": replicas,
                "resources": {"cpu": cpu, "memory_mib": memory_mib, "gpus": gpus}}
    return bundle_bytes(manifest, {"model.py": SOURCE})


def upload(client, name: str, data: bytes):
    body = io.BytesIO(data)
    body.name = "bundle.tar.gz"
    return client.post(f"/api/v1/workspaces/acme/models/{name}/versions", {"bundle": body}, format="multipart")


def live_version(acme, name: str, number: int, **resources) -> ModelVersion:
    model, _ = Model.objects.get_or_create(workspace=acme, name=name)
    return ModelVersion.objects.create(workspace=acme, model=model, number=number, flavor="custom", manifest={},
                                       bundle_sha256="0" * 64, bundle_size=1, status="ready", **resources)


@pytest.fixture
def deployer(alice, acme, settings, tmp_path):
    settings.PODIUM_ARTIFACTS_DIR = str(tmp_path)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    return bearer(key_for(alice, acme, ["deploy", "read"]))


def test_a_version_past_the_memory_quota_is_refused_naming_it(deployer, acme, settings, monkeypatch):
    monkeypatch.setattr("workers.tasks.deploy_version.delay", lambda pk: None)
    settings.PODIUM_QUOTA_MEMORY_MIB = 4096
    live_version(acme, "running", 1, replicas=2, memory_mib=1024, cpu=1)
    response = upload(deployer, "huge", bundle(memory_mib=256 * 1024, replicas=2))
    assert response.status_code == 409, response.content
    detail = response.json()["detail"]
    assert "needs 512 GiB of memory (2 replicas)" in detail
    assert "memory quota is 4 GiB and 2 GiB is in use" in detail
    assert not Model.objects.filter(name="huge").exists()
    assert upload(deployer, "fits", bundle(memory_mib=1024, replicas=2)).status_code == 201


def test_replica_cpu_and_gpu_quotas(deployer, acme, settings, monkeypatch):
    monkeypatch.setattr("workers.tasks.deploy_version.delay", lambda pk: None)
    settings.PODIUM_QUOTA_REPLICAS, settings.PODIUM_QUOTA_CPU, settings.PODIUM_QUOTA_GPUS = 3, 64, 0
    live_version(acme, "running", 1, replicas=2)
    assert "needs 2 model replicas (2 replicas); the workspace's model replicas quota is 3 and 2 is in use" in (
        upload(deployer, "more", bundle(replicas=2)).json()["detail"])
    settings.PODIUM_QUOTA_REPLICAS, settings.PODIUM_QUOTA_CPU = 8, 4
    assert "needs 64 CPU cores (1 replica)" in upload(deployer, "cpu", bundle(cpu=64)).json()["detail"]
    assert "needs 1 GPUs (1 replica); the workspace's gpus quota is 0" in (
        upload(deployer, "gpu", bundle(gpus=1)).json()["detail"])


def test_stopped_versions_free_their_share(deployer, acme, settings, monkeypatch):
    monkeypatch.setattr("workers.tasks.deploy_version.delay", lambda pk: None)
    settings.PODIUM_QUOTA_REPLICAS = 2
    old = live_version(acme, "running", 1, replicas=2)
    assert upload(deployer, "next", bundle()).status_code == 409
    ModelVersion.objects.filter(pk=old.pk).update(status="stopped")
    assert upload(deployer, "next", bundle()).status_code == 201


def test_an_operator_sets_one_workspaces_quota(acme, settings):
    settings.PODIUM_QUOTA_MEMORY_MIB = 16384
    out = io.StringIO()
    call_command("quota", "acme", "--memory-mib", "32768", "--test-runs", "1", stdout=out)
    acme.refresh_from_db()
    assert acme.quotas == {"memory_mib": 32768, "test_runs": 1}
    assert "0 MiB of 32 GiB" in out.getvalue() and "(this workspace)" in out.getvalue()
    call_command("quota", "acme", "--reset", stdout=io.StringIO())
    acme.refresh_from_db()
    assert acme.quotas == {}


def test_test_runs_at_once_are_bounded(alice, acme, settings):
    from webapp.ide import actions as ide
    from webapp.workspaces.actions import ActionError

    settings.PODIUM_QUOTA_TEST_RUNS = 1
    model = Model.objects.create(workspace=acme, name="m")
    TestRun.objects.create(id="r1", workspace=acme, model=model, status="running")
    with pytest.raises(ActionError) as refused:
        ide.start_test_run(alice.actor, alice.access(acme), model, {"model.py": SOURCE}, {})
    assert refused.value.status == 409
    assert "1 test runs are running in this workspace, its quota of test runs at once: 1" in refused.value.message


def test_the_settings_page_and_api_show_usage_against_quota(client, alice, acme, settings):
    settings.PODIUM_QUOTA_MEMORY_MIB = 4096
    live_version(acme, "running", 1, replicas=2, memory_mib=1024)
    client.force_login(alice.user)
    html = client.get("/w/acme/settings").content.decode()
    assert 'data-testid="quota-card"' in html
    assert "2 GiB of 4 GiB" in html and 'value="50"' in html
    rows = bearer(key_for(alice, acme, ["read"])).get("/api/v1/workspaces/acme/quotas").json()
    memory = next(row for row in rows if row["name"] == "memory_mib")
    assert memory == {"name": "memory_mib", "label": "Memory", "used": 2048.0, "limit": 4096.0,
                      "shown": "2 GiB of 4 GiB"}
