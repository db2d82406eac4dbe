"""The fake Nomad against a real agent's answers.

``../shared/nomad-api-samples/`` holds what a real Nomad agent answered to the
executor's requests (see its README). For every captured case this module
registers the same job on the fake (only the commands changed, so that the same
thing happens: a server that answers, a command that exits 2, a replica killed
with SIGKILL), sends the same requests, and asserts that the fake answers with
the same status codes, the same keys and the same task event types (with the
same ``Details`` keys). A change to the fake that drifts from Nomad fails here.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import signal
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_nomad import FakeNomad, samples_dir

pytestmark = pytest.mark.slow

TOKEN = "samples-token"
# Podium renders these job keys; Nomad (and so the fake) fills in the rest.
RENDERED_KEYS = ("ID", "Name", "Namespace", "Type", "Region", "Datacenters", "Priority", "Meta", "TaskGroups")
SERVE = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['NOMAD_PORT_http'])), H).serve_forever()\n"
)


def samples() -> Path:
    return samples_dir()


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeNomad]:
    fake = FakeNomad(tmp_path_factory.mktemp("nomad-samples"), token=TOKEN).start()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def api(fake: FakeNomad) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.address, headers={"X-Nomad-Token": TOKEN}, timeout=10) as client:
        assert client.put("/v1/namespace/podium-demo", json={"Name": "podium-demo"}).status_code == 200
        yield client


@pytest.fixture(scope="module")
def artifact_url() -> Iterator[str]:
    """Serves an empty tarball, so that jobs with artifacts fetch something."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz"):
        pass
    body = buffer.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/bundle.tar.gz"
    server.shutdown()


def the_job(folder: Path, commands: dict[str, str], artifact_url: str) -> dict[str, Any]:
    """The captured job as Podium would submit it, with each task running ``commands[task]``."""
    captured = load(folder / "job.json")
    job = {key: captured[key] for key in RENDERED_KEYS}
    for group in job["TaskGroups"]:
        for task in group["Tasks"]:
            task["Config"] = {**task["Config"], "command": "/bin/sh", "args": ["-c", commands[task["Name"]]]}
            for artifact in task.get("Artifacts") or []:
                artifact["GetterSource"] = artifact_url
    return {"Job": job}


def until(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"the fake never got to: {what}"
        time.sleep(0.05)


def allocations(api: httpx.Client, job_id: str) -> dict[int, dict[str, Any]]:
    """Full allocations of a job by replica index."""
    stubs = api.get(f"/v1/job/{job_id}/allocations", params={"namespace": "podium-demo"}).json()
    full = [api.get(f"/v1/allocation/{stub['ID']}").json() for stub in stubs]
    return {int(alloc["Name"].rsplit("[", 1)[1].rstrip("]")): alloc for alloc in full}


def events(alloc: dict[str, Any], task: str = "sandbox") -> list[str]:
    return [event["Type"] for event in alloc["TaskStates"][task]["Events"]]


def checks(api: httpx.Client, alloc: dict[str, Any]) -> Any:
    return api.get(f"/v1/client/allocation/{alloc['ID']}/checks").json()


def all_checks(api: httpx.Client, job_id: str, status: str) -> bool:
    allocs = allocations(api, job_id).values()
    results = [checks(api, alloc) for alloc in allocs]
    return bool(results) and all(r and all(c["Status"] == status for c in r.values()) for r in results)


# -- what to run for each captured case, and when the fake has got to the same point ----------------------


def serve_and_pass_checks(api: httpx.Client, job_id: str, fake: FakeNomad) -> None:
    until("every replica's check passes", lambda: all_checks(api, job_id, "success"))


def listen_nowhere_and_fail_checks(api: httpx.Client, job_id: str, fake: FakeNomad) -> None:
    until("the check fails while the service is registered", lambda: all_checks(api, job_id, "failure"))


def crash_then_stop_during_the_restart_delay(api: httpx.Client, job_id: str, fake: FakeNomad) -> None:
    until("a restart is pending", lambda: "Restarting" in events(allocations(api, job_id)[0]))
    assert api.delete(f"/v1/job/{job_id}", params={"namespace": "podium-demo"}).status_code == 200
    until("the allocation is complete", lambda: allocations(api, job_id)[0]["ClientStatus"] == "complete")


def kill_replica_one(api: httpx.Client, job_id: str, fake: FakeNomad) -> None:
    serve_and_pass_checks(api, job_id, fake)
    victim = allocations(api, job_id)[1]
    os.killpg(fake.procs[victim["ID"]].pid, signal.SIGKILL)

    def restarted() -> bool:
        alloc = allocations(api, job_id)[1]
        return alloc["TaskStates"]["sandbox"]["Restarts"] == 1 and events(alloc)[-1] == "Started"

    until("replica 1 runs again after its restart", restarted)
    serve_and_pass_checks(api, job_id, fake)


def end_failed(api: httpx.Client, job_id: str, fake: FakeNomad) -> None:
    until("the allocation failed", lambda: allocations(api, job_id)[0]["ClientStatus"] == "failed")
    job = f"/v1/job/{job_id}"
    until("the job is dead", lambda: api.get(job, params={"namespace": "podium-demo"}).json()["Status"] == "dead")


SERVER = "exec {python} {serve}"
CASES: dict[str, tuple[dict[str, str], Callable[[httpx.Client, str, FakeNomad], None]]] = {
    "server-running": ({"environment": "exit 0", "sandbox": SERVER}, serve_and_pass_checks),
    "server-sklearn-running": ({"environment": "exit 0", "sandbox": SERVER}, serve_and_pass_checks),
    "server-zero-restarts-warm-runner": ({"environment": "exit 0", "sandbox": SERVER}, serve_and_pass_checks),
    "server-check-failing": ({"sandbox": "exec sleep 60"}, listen_nowhere_and_fail_checks),
    "server-crash-loop": ({"environment": "exit 0", "sandbox": "exit 2"}, crash_then_stop_during_the_restart_delay),
    "server-replica-killed": ({"environment": "exit 0", "sandbox": SERVER}, kill_replica_one),
    "oneshot-network-none-setup-failure": ({"environment": "exit 0", "sandbox": "exit 0"}, end_failed),
    "oneshot-environment-without-network": ({"environment": "exit 2", "sandbox": "exit 0"}, end_failed),
}


def test_every_captured_case_is_checked() -> None:
    folders = {path.parent.name for path in samples().glob("*/job.json")}
    assert folders == set(CASES) | {"placement-failed"}, "a new capture needs a case here"


# -- comparisons -------------------------------------------------------------------------------------------


# Keys Nomad leaves out while they are empty, and which depend on timing: an allocation's
# DeploymentStatus appears once the deployment has judged it (min_healthy_time).
OPTIONAL = {"DeploymentStatus"}


def same_keys(real: Any, fake: Any, where: str) -> None:
    assert isinstance(fake, type(real)), f"{where}: real is {type(real).__name__}, fake {type(fake).__name__}"
    if isinstance(real, dict):
        assert sorted(set(fake) - OPTIONAL) == sorted(set(real) - OPTIONAL), f"{where}: keys differ"


def same_allocation(real: dict[str, Any], fake: dict[str, Any], where: str) -> None:
    same_keys(real, fake, where)
    assert (fake["ClientStatus"], fake["DesiredStatus"]) == (real["ClientStatus"], real["DesiredStatus"]), where
    assert sorted(fake["TaskStates"]) == sorted(real["TaskStates"]), where
    for task, state in real["TaskStates"].items():
        mine = fake["TaskStates"][task]
        same_keys(state, mine, f"{where} TaskStates.{task}")
        assert (mine["State"], mine["Failed"], mine["Restarts"]) == (state["State"], state["Failed"], state["Restarts"])
        assert events(fake, task) == events(real, task), f"{where} TaskStates.{task}: event types differ"
        for ours, theirs in zip(mine["Events"], state["Events"], strict=True):
            label = f"{where} TaskStates.{task} event {theirs['Type']!r}"
            same_keys(theirs, ours, label)
            same_keys(theirs["Details"], ours["Details"], f"{label} Details")
            assert ours["DisplayMessage"].split(" ")[0] == theirs["DisplayMessage"].split(" ")[0], label


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fake_answers_each_captured_case_as_nomad_did(
    case: str, fake: FakeNomad, api: httpx.Client, artifact_url: str, tmp_path: Path
) -> None:
    folder = samples() / case
    commands, drive = CASES[case]
    serve = tmp_path / "serve.py"
    serve.write_text(SERVE)
    commands = {task: command.format(python=sys.executable, serve=serve) for task, command in commands.items()}
    body = the_job(folder, commands, artifact_url)
    job_id = body["Job"]["ID"]
    registered = api.post("/v1/jobs", json=body)
    assert registered.status_code == 200, registered.text
    drive(api, job_id, fake)

    ns = {"namespace": "podium-demo"}
    job = api.get(f"/v1/job/{job_id}", params=ns)
    real_job = load(folder / "job.json")
    same_keys(real_job, job.json(), "job")
    assert (job.json()["Status"], job.json()["Stop"]) == (real_job["Status"], real_job["Stop"])

    stubs = api.get(f"/v1/job/{job_id}/allocations", params=ns)
    real_stubs = load(folder / "job-allocations.json")
    assert stubs.status_code == 200 and len(stubs.json()) == len(real_stubs)
    for real_stub, stub in zip(real_stubs, stubs.json(), strict=True):
        same_keys(real_stub, stub, "job allocations item")
        same_keys(real_stub["TaskStates"]["sandbox"], stub["TaskStates"]["sandbox"], "job allocations TaskStates")

    service = api.get(f"/v1/service/{job_id}", params=ns)
    real_service = load(folder / "service.json")
    assert service.status_code == 200 and len(service.json()) == len(real_service), service.json()
    for real_reg, reg in zip(real_service, service.json(), strict=True):
        same_keys(real_reg, reg, "service registration")

    mine = allocations(api, job_id)
    for path in sorted(folder.glob("allocation-*.json")):
        real = load(path)
        index = int(real["Name"].rsplit("[", 1)[1].rstrip("]"))
        alloc = mine[index]
        same_allocation(real, alloc, path.name)
        real_checks = load(folder / f"checks-{path.stem.split('-', 1)[1]}.json")
        fake_checks = api.get(f"/v1/client/allocation/{alloc['ID']}/checks")
        assert fake_checks.status_code == 200
        if real_checks is None:
            assert fake_checks.json() is None, f"{path.name}: checks"
        else:
            assert fake_checks.json() is not None, f"{path.name}: checks"
            for real_check, check in zip(real_checks.values(), fake_checks.json().values(), strict=True):
                same_keys(real_check, check, f"{path.name}: check result")
                assert check["Status"] == real_check["Status"]
        same_logs(api, folder, path.stem.split("-", 1)[1], alloc)

    if (folder / "jobs.json").exists():
        listed = api.get("/v1/jobs", params=ns)
        assert listed.status_code == 200
        real_stub = load(folder / "jobs.json")[0]
        for stub in listed.json():
            same_keys(real_stub, stub, "jobs item")
            same_keys(real_stub["JobSummary"], stub["JobSummary"], "jobs item JobSummary")


def same_logs(api: httpx.Client, folder: Path, short_id: str, alloc: dict[str, Any]) -> None:
    """Logs of a task that never started are a 404 with Nomad's text, of a task the job does
    not have an error with Nomad's text; others answer 200."""
    for path in sorted(folder.glob(f"logs-{short_id}-*.txt")):
        parts = path.stem.split("-")[2:]
        task, stream = ("environment", parts[1]) if parts[0] == "environment" else ("sandbox", parts[0])
        params = {"task": task, "type": stream, "plain": "true", "origin": "start", "offset": "0"}
        answer = api.get(f"/v1/client/fs/logs/{alloc['ID']}", params=params)
        real = path.read_text()
        if re.fullmatch(r'task ".*" not started yet\. No logs available\n?', real):
            assert (answer.status_code, answer.text) == (404, real.rstrip("\n")), path.name
        elif re.fullmatch(r'unknown task name ".*"\n?', real):  # the status was not captured
            assert answer.status_code >= 400 and answer.text == real.rstrip("\n"), path.name
        else:
            assert answer.status_code == 200, path.name


def test_the_fake_answers_a_placement_failure_as_nomad_did(api: httpx.Client, artifact_url: str) -> None:
    folder = samples() / "placement-failed"
    body = the_job(folder, {"sandbox": "exit 0"}, artifact_url)
    registered = api.post("/v1/jobs", json=body)
    real_register = load(folder / "register.json")
    assert registered.status_code == 200
    same_keys(real_register, registered.json(), "register answer")
    assert registered.json()["Warnings"] == real_register["Warnings"]
    evaluation = api.get(f"/v1/evaluation/{registered.json()['EvalID']}").json()
    real_eval = load(folder / "evaluation.json")
    same_keys(real_eval, evaluation, "evaluation")
    (real_metrics,) = real_eval["FailedTGAllocs"].values()
    (metrics,) = evaluation["FailedTGAllocs"].values()
    same_keys(real_metrics, metrics, "FailedTGAllocs item")
    assert metrics["ConstraintFiltered"] == real_metrics["ConstraintFiltered"]
    for key in ("ClassExhausted", "ClassFiltered", "DimensionExhausted"):
        assert metrics[key] == real_metrics[key], key
    job_id = body["Job"]["ID"]
    ns = {"namespace": "podium-demo"}
    assert api.get(f"/v1/job/{job_id}/allocations", params=ns).json() == load(folder / "job-allocations.json")
    assert api.get(f"/v1/service/{job_id}", params=ns).json() == load(folder / "service.json")
    assert api.get(f"/v1/job/{job_id}", params=ns).json()["Status"] == load(folder / "job.json")["Status"]


ERROR_REQUESTS = {
    "allocation-missing.txt": ("GET", "/v1/allocation/00000000-0000-0000-0000-000000000000", {}),
    "job-allocations-missing.txt": ("GET", "/v1/job/no-such-job/allocations", {"namespace": "podium-demo"}),
    "job-missing.txt": ("GET", "/v1/job/no-such-job", {"namespace": "podium-demo"}),
    "logs-missing.txt": (
        "GET",
        "/v1/client/fs/logs/00000000-0000-0000-0000-000000000000",
        {"task": "sandbox", "type": "stdout", "plain": "true"},
    ),
    "namespace-missing.txt": ("GET", "/v1/namespace/podium-no-such-workspace", {}),
    "service-missing.txt": ("GET", "/v1/service/no-such-job", {"namespace": "podium-demo"}),
}


def test_every_captured_error_is_checked() -> None:
    assert {p.name for p in (samples() / "errors").glob("*.txt")} == set(ERROR_REQUESTS) | {"register-invalid-job.txt"}


@pytest.mark.parametrize("name", sorted(ERROR_REQUESTS))
def test_the_fake_answers_errors_as_nomad_did(name: str, api: httpx.Client) -> None:
    status, body = (samples() / "errors" / name).read_text().split("\n", 1)
    method, path, params = ERROR_REQUESTS[name]
    answer = api.request(method, path, params=params)
    assert (f"HTTP {answer.status_code}", answer.text.rstrip("\n")) == (status, body.rstrip("\n"))


def test_the_fake_refuses_the_captured_invalid_job_with_nomads_text(api: httpx.Client, artifact_url: str) -> None:
    body = the_job(samples() / "server-running", {"environment": "exit 0", "sandbox": "exit 0"}, artifact_url)
    body["Job"]["ID"] = body["Job"]["Name"] = "invalid-delay"
    body["Job"]["TaskGroups"][0]["ReschedulePolicy"]["Delay"] = 1_000_000_000
    answer = api.post("/v1/jobs", json=body)
    status, text = (samples() / "errors" / "register-invalid-job.txt").read_text().split("\n", 1)
    assert (f"HTTP {answer.status_code}", answer.text) == (status, text)


def test_the_fake_agent_and_namespace_have_nomads_keys(api: httpx.Client) -> None:
    real_agent, agent = load(samples() / "agent-self.json"), api.get("/v1/agent/self").json()
    same_keys(real_agent, agent, "agent self")
    same_keys(real_agent["member"], agent["member"], "agent self member")
    same_keys(load(samples() / "namespace.json"), api.get("/v1/namespace/podium-demo").json(), "namespace")
