"""The reconciler: a version whose sandbox was stopped, failed or deregistered behind Podium's back is
started again (or marked failed, with the reason), with an audit row by "Podium"; nothing is touched while
the executor cannot be reached. Local: the real supervisor. Nomad: the fake, a job deregistered by hand."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxHandle, State, get_executor, nomad_jobs
from sandbox.executors.nomad import NomadConfig, NomadExecutor
from tests.serving.conftest import custom_bundle
from tests.serving.test_deploy import ECHO, predict, upload
from webapp.serving import deploy, environments, reconciler
from webapp.serving.models import ModelVersion
from webapp.workspaces.models import AuditEvent
from workers import tasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))
from fake_nomad import FakeNomad  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def deployed(client) -> ModelVersion:
    assert upload(client, "greeter", custom_bundle(ECHO, **{"greeting.txt": "hello"})).status_code == 201
    version = ModelVersion.objects.get(model__name="greeter", number=1)
    assert version.status == "ready", version.error
    return version


def answers(key: str, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    status = 0
    while time.monotonic() < deadline:
        status = asyncio.run(predict(key, "/v1/models/greeter/predict", {"x": 1})).status_code
        if status == 200:
            return status
        time.sleep(0.2)
    return status


def test_a_sandbox_stopped_behind_podiums_back_is_started_again(deployer, invoke_key):  # noqa: F811
    version = deployed(deployer)
    old = SandboxHandle.model_validate(version.sandbox)
    get_executor().stop(old, grace_s=1)  # not through Podium: the version still says "ready"
    assert answers(invoke_key, within_s=2) != 200

    assert tasks.reconcile_sandboxes() == 1  # beat's task, as it runs every 30 s
    version.refresh_from_db()
    assert version.status == "ready" and version.sandbox["id"] != old.id
    assert answers(invoke_key, within_s=30) == 200
    (row,) = AuditEvent.objects.filter(action=reconciler.RESTARTED)
    assert row.actor_label == "Podium" and row.object_id == str(version.pk)
    assert row.data["reason"] == "its sandbox was stopped outside Podium"
    assert reconciler.reconcile() == []  # running again: nothing to repair


def test_a_version_restarted_too_often_is_marked_failed_with_the_reason(deployer, settings):  # noqa: F811
    settings.PODIUM_RECONCILE_MAX_RESTARTS = 0
    version = deployed(deployer)
    get_executor().stop(SandboxHandle.model_validate(version.sandbox), grace_s=1)
    (repair,) = reconciler.reconcile()
    assert repair.action == reconciler.FAILED
    version.refresh_from_db()
    assert version.status == "failed"
    assert version.error == ("Podium stopped serving this version: its sandbox was stopped outside Podium; "
                             "it was restarted 0 times in the last hour.")
    assert AuditEvent.objects.get(action=reconciler.FAILED).actor_label == "Podium"


def test_nothing_is_repaired_while_the_executor_cannot_be_reached(deployer):  # noqa: F811
    version = deployed(deployer)
    unreachable = NomadExecutor(NomadConfig(address="http://127.0.0.1:9", signing_key=b"k"))
    local = version.sandbox
    ModelVersion.objects.filter(pk=version.pk).update(
        sandbox={"executor": "nomad", "id": "gone", "state": {"namespace": "podium-acme"}})
    assert reconciler.reconcile(unreachable) == []
    version.refresh_from_db()
    assert version.status == "ready" and version.sandbox["id"] == "gone"
    assert not AuditEvent.objects.filter(action__startswith="model.version.")
    ModelVersion.objects.filter(pk=version.pk).update(sandbox=local)


def test_a_nomad_job_deregistered_by_hand_is_registered_again(deployer, serving, tmp_path, live_server,  # noqa: F811
                                                              settings):
    version = deployed(deployer)
    settings.PODIUM_ARTIFACT_ROOT = serving
    settings.PODIUM_ARTIFACT_SIGNING_KEY = "k" * 40
    fake = FakeNomad(tmp_path / "nomad").start()
    try:
        nomad = NomadExecutor(NomadConfig(
            address=fake.address, settings=nomad_jobs.NomadSettings(datacenters=["dc1"]),
            artifact_url=f"{live_server.url}/sandbox-artifacts", artifact_root=serving,
            signing_key=settings.PODIUM_ARTIFACT_SIGNING_KEY.encode()))
        environment = environments.lookup(version.requirements, version.workspace)
        assert environment is not None
        first = nomad.start(deploy.server_spec(version, environment.path))
        local = version.sandbox
        ModelVersion.objects.filter(pk=version.pk).update(sandbox=first.model_dump(mode="json"))
        assert nomad.wait(first, timeout=30, until=frozenset({State.RUNNING})).state == State.RUNNING
        assert reconciler.reconcile(nomad) == []

        namespace = first.state["namespace"]  # by hand, as an operator would: nomad job stop -purge
        assert httpx.delete(f"{fake.address}/v1/job/{first.id}",
                            params={"namespace": namespace, "purge": "true"}).status_code == 200
        (repair,) = reconciler.reconcile(nomad)
        assert repair.action == reconciler.RESTARTED and repair.reason == "its sandbox is gone from the executor"
        version.refresh_from_db()
        second = SandboxHandle.model_validate(version.sandbox)
        assert second.id != first.id and version.status == "ready"
        deadline = time.monotonic() + 30
        while not nomad.addresses(second) and time.monotonic() < deadline:
            time.sleep(0.2)
        (address,) = nomad.addresses(second)
        assert httpx.get(f"{address}/ready", timeout=5).status_code == 200
        nomad.stop(second, grace_s=1)
        get_executor().stop(SandboxHandle.model_validate(local), grace_s=1)
        ModelVersion.objects.filter(pk=version.pk).update(sandbox=local)
    finally:
        fake.close()


def test_a_warm_runner_whose_sandbox_died_is_retired(alice, acme, serving):
    from sandbox import SandboxSpec
    from webapp.ide.models import WarmRunner

    executor = get_executor()
    handle = executor.start(SandboxSpec(workspace="acme", name="warm", purpose="oneshot", command=["/bin/true"]))
    assert executor.wait(handle, timeout=30).state == State.EXITED  # as if it died
    WarmRunner.objects.create(id="w" * 32, key="k" * 64, workspace=acme, user=alice.user, environment="",
                              status="ready", handle=handle.model_dump(mode="json"))
    assert tasks.reconcile_sandboxes() == 1
    assert not WarmRunner.objects.exists()
