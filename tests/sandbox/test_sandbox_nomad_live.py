"""The executor contract and a few Nomad-only checks against a real Nomad cluster.

Runs only with ``PODIUM_NOMAD_LIVE=1`` and the cluster in ``NOMAD_ADDR`` (plus
``NOMAD_TOKEN`` and the other variables of docs/sandbox.md); otherwise every test
here is collected and reported as skipped, never passed. Clients need the
configuration in ``deploy/nomad/``. Run it with::

    PODIUM_NOMAD_LIVE=1 NOMAD_ADDR=http://nomad:4646 make test ARGS="-m nomad"
"""

from __future__ import annotations

import os
import time

import pytest
import test_sandbox_contract as contract
from sandbox_helpers import PYTHON

from sandbox import SandboxSpec, State
from sandbox.executors.nomad import NomadConfig, NomadExecutor

pytestmark = [
    pytest.mark.nomad,
    pytest.mark.skipif(
        os.environ.get("PODIUM_NOMAD_LIVE") != "1",
        reason="needs a Nomad cluster: set PODIUM_NOMAD_LIVE=1 and NOMAD_ADDR",
    ),
]


@pytest.fixture
def executor() -> NomadExecutor:
    """Overrides the contract's executor: only the Nomad one, on the real cluster."""
    return NomadExecutor(NomadConfig.from_env())


# The whole contract, run here against the real cluster.
test_it_runs_a_oneshot_to_success = contract.test_it_runs_a_oneshot_to_success
test_it_reports_a_failure_with_its_exit_code_and_both_streams = (
    contract.test_it_reports_a_failure_with_its_exit_code_and_both_streams
)
test_it_names_the_time_limit = contract.test_it_names_the_time_limit
test_a_server_answers_at_its_addresses_until_stopped = contract.test_a_server_answers_at_its_addresses_until_stopped
test_it_restarts_a_crashed_server_with_backoff_then_gives_up = (
    contract.test_it_restarts_a_crashed_server_with_backoff_then_gives_up
)
test_a_saved_handle_finds_the_sandbox_again = contract.test_a_saved_handle_finds_the_sandbox_again
test_stopping_a_finished_sandbox_changes_nothing = contract.test_stopping_a_finished_sandbox_changes_nothing
test_it_refuses_more_gpus_than_exist_naming_both = contract.test_it_refuses_more_gpus_than_exist_naming_both
test_an_unknown_sandbox_is_not_found = contract.test_an_unknown_sandbox_is_not_found
test_following_logs_yields_lines_as_written_and_ends_with_the_run = (
    contract.test_following_logs_yields_lines_as_written_and_ends_with_the_run
)
test_tail_gives_the_last_lines = contract.test_tail_gives_the_last_lines
test_logs_are_timestamped = contract.test_logs_are_timestamped
test_it_reports_its_health = contract.test_it_reports_its_health
test_the_sandbox_learns_who_it_is_from_its_environment = contract.test_the_sandbox_learns_who_it_is_from_its_environment


def test_a_sandbox_has_no_capabilities(executor: NomadExecutor) -> None:
    handle = executor.start(contract.sh("grep ^Cap /proc/self/status"))
    assert executor.wait(handle, timeout=60).state == State.EXITED
    caps = dict(line.split(":\t") for line in contract.stdout(executor, handle))
    assert {name: value for name, value in caps.items() if int(value, 16)} == {}, caps


def test_a_run_with_network_none_has_loopback_only(executor: NomadExecutor) -> None:
    handle = executor.start(contract.sh("ls /sys/class/net"))
    assert executor.wait(handle, timeout=60).state == State.EXITED, executor.poll(handle)
    assert contract.stdout(executor, handle) == ["lo"]


def test_a_killed_replica_is_restarted_and_routed_to_again(executor: NomadExecutor) -> None:
    command = [PYTHON, "-c", contract.SERVER]
    spec = SandboxSpec.model_validate(
        {"workspace": "acme", "name": "kill", "purpose": "server", "replicas": 2, "command": command}
    )
    handle = executor.start(spec)
    try:
        contract.wait_until_answering(executor, handle, replicas=2, timeout=120)
        (victim, _) = executor._allocations(handle)
        executor._checks.request(  # POST /v1/client/allocation/:id/signal (alloc-lifecycle)
            victim["ID"], "signal", method="post", json={"Signal": "SIGKILL", "Task": "sandbox"}
        )
        deadline = time.monotonic() + 120
        while executor.poll(handle).restarts < 1:
            assert time.monotonic() < deadline, executor.poll(handle)
            time.sleep(0.5)
        assert len(contract.wait_until_answering(executor, handle, replicas=2, timeout=120)) == 2
        assert executor.poll(handle).state == State.RUNNING
    finally:
        assert executor.stop(handle, grace_s=5).state == State.STOPPED
