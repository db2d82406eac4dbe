"""Warm runners in real sandboxes: test runs that start with their libraries imported, and that behave
exactly as oneshot runs do (the same result, failing line, limits); one member's runner is never another's;
idle, dead and deleted runners go away with their sandboxes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox import SandboxHandle, State, get_executor
from tests.conftest import client_for
from tests.ide.test_ide_runs import BASE, create, start, texts, wait
from webapp.ide import warm
from webapp.ide.models import WarmRunner

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WARM_LINE = "[podium] warm start: the libraries were imported before this run"


def prewarm(person: Any, name: str, files: dict[str, str] | None = None) -> str:
    body = {} if files is None else {"files": files}
    response = client_for(person).post(f"{BASE}/{name}/warm-runner", body, format="json")
    assert response.status_code == 202, response.content
    return str(response.json()["status"])


def ready_runner(person: Any, name: str, files: dict[str, str]) -> WarmRunner:
    """Ask for a runner for ``files`` and wait until it is ready."""
    deadline = time.monotonic() + 120
    while (state := prewarm(person, name, files)) != "ready":
        if state == "cold":  # its environment is not built yet: a first (oneshot) run builds it
            assert wait(person, name, start(person, name, files, {}))["warm"] is False
            continue
        assert state == "starting", state
        assert time.monotonic() < deadline, "the warm runner never became ready"
        warm.join_pending(5)
    return WarmRunner.objects.get(user=person.user, preload=warm.imports_of(files))


def sandbox_state(runner: WarmRunner) -> State:
    return get_executor().poll(SandboxHandle.model_validate(runner.handle)).state


def test_after_a_cold_run_the_next_run_is_warm_with_the_same_answer(alice, acme, sandboxes):
    source = create(alice, "iris", "sklearn")
    cold = wait(alice, "iris", start(alice, "iris", source["files"], source["sample_input"]))
    assert cold["status"] == "passed" and cold["warm"] is False, texts(cold)
    # The run's thread starts a runner for next time right after reporting the result.
    deadline = time.monotonic() + 120
    while not WarmRunner.objects.filter(user=alice.user, status="ready").exists():
        assert time.monotonic() < deadline, "no warm runner became ready after the cold run"
        warm.join_pending(1)
        time.sleep(0.05)
    runner = WarmRunner.objects.get(user=alice.user)
    assert "sklearn.linear_model" in runner.preload

    started = time.monotonic()
    hot = wait(alice, "iris", start(alice, "iris", source["files"], source["sample_input"]))
    seconds = time.monotonic() - started
    assert hot["status"] == "passed" and hot["warm"] is True and hot["environment_cached"] is True, texts(hot)
    assert hot["result"]["answer"] == cold["result"]["answer"]
    assert WARM_LINE in texts(hot) and "[podium] loaded in" in texts(hot)
    print(f"\nwarm-runner sklearn test run, POST to result: {seconds:.2f} s "
          f"(cold run before it: load {cold['result']['load_ms']:.0f} ms; warm: {hot['result']['load_ms']:.0f} ms)")
    assert hot["result"]["load_ms"] < cold["result"]["load_ms"]
    assert WarmRunner.objects.get(pk=runner.pk).runs == 1


def test_a_warm_failure_names_the_line_as_a_oneshot_run_does(alice, acme, sandboxes):
    create(alice, "broken", "custom")
    files = {"model.py": "import json\n\nclass Model:\n    def load(self):\n        print('loading now')\n\n"
                         "    def predict(self, body):\n        return body['x'] / 0\n"}
    ready_runner(alice, "broken", files)

    run = wait(alice, "broken", start(alice, "broken", files, {"x": 1}))

    assert run["warm"] is True and run["status"] == "failed" and run["failed_step"] == "predict"
    assert run["error"]["type"] == "ZeroDivisionError"
    assert (run["error"]["path"], run["error"]["line"]) == ("model.py", 8)
    assert "loading now" in texts(run)


def test_a_warm_run_over_the_wall_time_limit_is_stopped(alice, acme, sandboxes, settings):
    settings.PODIUM_IDE_TEST_WALL_S = 2
    create(alice, "sleepy", "custom")
    files = {"model.py": "import time\n\nclass Model:\n    def load(self):\n        time.sleep(60)\n\n"
                         "    def predict(self, body):\n        return 1\n"}
    runner = ready_runner(alice, "sleepy", files)
    started = time.monotonic()

    run = wait(alice, "sleepy", start(alice, "sleepy", files, {}))

    assert time.monotonic() - started < 15
    assert run["warm"] is True and run["status"] == "failed" and run["failed_step"] == "limit"
    assert run["error"]["type"] == "LimitExceeded" and "wall-time limit" in run["error"]["message"]
    assert sandbox_state(runner) == State.RUNNING  # only the run was stopped


def test_one_members_runner_is_never_anothers(alice, member_of, acme, sandboxes):
    bob = member_of("bob", "developer")
    source = create(alice, "iris", "sklearn")
    ready_runner(alice, "iris", source["files"])

    bobs = wait(bob, "iris", start(bob, "iris", source["files"], source["sample_input"]))

    assert bobs["status"] == "passed" and bobs["warm"] is False
    assert WarmRunner.objects.get(user=alice.user).runs == 0


def test_a_dead_runner_is_retired_and_the_run_goes_the_oneshot_way(alice, acme, sandboxes):
    source = create(alice, "words", "custom")
    runner = ready_runner(alice, "words", source["files"])
    get_executor().stop(SandboxHandle.model_validate(runner.handle), grace_s=1)

    run = wait(alice, "words", start(alice, "words", source["files"], {"text": "helpful"}))

    assert run["status"] == "passed" and run["warm"] is False, texts(run)
    assert not WarmRunner.objects.filter(pk=runner.pk).exists()


def test_idle_runners_are_retired_and_their_sandboxes_stopped(alice, acme, sandboxes, settings):
    source = create(alice, "words", "custom")
    runner = ready_runner(alice, "words", source["files"])
    settings.PODIUM_IDE_WARM_IDLE_S = 0

    from webapp.ide.tasks import retire_idle_warm_runners

    assert retire_idle_warm_runners() == 1
    assert not WarmRunner.objects.filter(pk=runner.pk).exists()
    deadline = time.monotonic() + 10
    while sandbox_state(runner) != State.STOPPED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_state(runner) == State.STOPPED


def test_deleting_the_workspace_stops_its_runners(alice, acme, sandboxes):
    source = create(alice, "words", "custom")
    runner = ready_runner(alice, "words", source["files"])

    assert client_for(alice).delete("/api/v1/workspaces/acme", {"confirm": "acme"}, format="json").status_code == 204

    deadline = time.monotonic() + 10
    while sandbox_state(runner) != State.STOPPED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_state(runner) == State.STOPPED


def test_a_member_keeps_at_most_the_configured_number_of_runners(alice, acme, sandboxes, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.PODIUM_IDE_WARM_RUNNERS = 1
    source = create(alice, "words", "custom")
    first = ready_runner(alice, "words", source["files"])
    WarmRunner.objects.filter(pk=first.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    other = {**source["files"], "model.py": "import csv\n" + source["files"]["model.py"]}
    second = ready_runner(alice, "words", other)

    assert list(WarmRunner.objects.filter(user=alice.user).values_list("pk", flat=True)) == [second.pk]
    deadline = time.monotonic() + 10
    while sandbox_state(first) != State.STOPPED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_state(first) == State.STOPPED

    # A runner used within a run's wall time may be running a test now: it stays, over the limit, until idle.
    third = ready_runner(alice, "words", {**other, "model.py": "import glob\n" + other["model.py"]})
    assert set(WarmRunner.objects.filter(user=alice.user).values_list("pk", flat=True)) == {second.pk, third.pk}


def test_prewarm_says_cold_when_the_environment_is_not_built_and_off_when_disabled(alice, acme, sandboxes, settings):
    source = create(alice, "words", "custom")
    unbuilt = {**source["files"], "requirements.txt": "podium-never-built-package==1.0\n"}

    assert prewarm(alice, "words", unbuilt) == "cold"
    settings.PODIUM_IDE_WARM_RUNNERS = 0
    assert prewarm(alice, "words") == "off"
    assert not WarmRunner.objects.exists()


def test_prewarm_is_for_members_who_can_test(alice, member_of, acme, sandboxes):
    bob = member_of("bob", "viewer")
    create(alice, "words", "custom")

    response = client_for(bob).post(f"{BASE}/words/warm-runner", {}, format="json")

    assert response.status_code == 403
    assert not WarmRunner.objects.exists()


def test_models_that_import_fork_unsafe_libraries_and_gpu_models_run_oneshot(alice, acme, tmp_path):
    from sandbox import Network
    from webapp.ide.models import TestRun
    from webapp.serving.models import Model

    model = Model.objects.create(workspace=acme, name="tf")
    plain = TestRun(workspace=acme, model=model, created_by=alice.user, files={"model.py": "import numpy\n"})
    tf = TestRun(workspace=acme, model=model, created_by=alice.user,
                 files={"model.py": "from tensorflow import keras\nimport numpy\n"})

    assert warm.wanted_for(plain, tmp_path, {}, Network.NONE).preload == ("numpy",)
    assert warm.wanted_for(tf, tmp_path, {}, Network.NONE) is None
    assert warm.wanted_for(plain, tmp_path, {"resources": {"gpus": 1}}, Network.NONE) is None
