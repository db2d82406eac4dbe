"""Nomad-specific behaviour: rendered jobs (golden files), namespaces per
workspace, ACL token, Nomad's validation errors, GPU placement and artifacts
fetched from signed URLs. Set PODIUM_UPDATE_GOLDEN=1 to rewrite the golden files."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import sys
import tarfile
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import jinja2
import pytest
from fake_nomad import FakeNomad, _RestartTracker, canonicalize, samples_dir

from sandbox import (
    GpuConstraints,
    Limits,
    Network,
    Resources,
    ResourceUnavailable,
    RestartPolicy,
    SandboxError,
    SandboxHandle,
    SandboxNotFound,
    SandboxSpec,
    SandboxUnavailable,
    State,
    nomad_check,
    nomad_jobs,
)
from sandbox.environments import MARKER
from sandbox.executors.nomad import NomadConfig, NomadExecutor
from sandbox.signing import sign_url, verify_signature
from sandbox.spec import Purpose

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = nomad_jobs.NomadSettings(datacenters=["dc1"])


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeNomad]:
    nodes = [
        {
            "ID": "node-gpu",
            "Name": "gpu-1",
            "Datacenter": "dc1",
            "Devices": [
                {"Vendor": "nvidia", "Type": "gpu", "Name": "A100", "Instances": [{"ID": "GPU-0"}, {"ID": "GPU-1"}]}
            ],
        }
    ]
    fake = FakeNomad(tmp_path_factory.mktemp("nomad"), token="t0ken", nodes=nodes).start()
    yield fake
    fake.close()


@pytest.fixture
def nomad(fake: FakeNomad) -> NomadExecutor:
    return NomadExecutor(NomadConfig(address=fake.address, token="t0ken", settings=SETTINGS, signing_key=b"k"))


def golden_cases(tmp: Path) -> dict[str, tuple[SandboxSpec, dict[str, str]]]:
    env = tmp / "envs" / "abc123"
    env.mkdir(parents=True)
    (env / MARKER).write_text(json.dumps({"requirements": "scikit-learn==1.5.2", "python": "3.11.2"}))
    return {
        "server-gpu": (
            SandboxSpec(
                workspace="acme",
                name="churn-v3",
                purpose="server",
                replicas=2,
                command=["python", "-m", "serve"],
                resources=Resources(
                    cpu=2, memory_mib=4096, gpus=1, gpu=GpuConstraints(min_memory_mib=16384, model="A100")
                ),
            ),
            {"code": "https://podium.example/sandbox-artifacts/models/churn/3.tar.gz?expires=1&signature=abc"},
        ),
        "oneshot": (
            SandboxSpec(
                workspace="acme",
                name="nightly-run",
                purpose="oneshot",
                command=["python", "run.py"],
                limits=Limits(wall_time_s=600, cpu_time_s=300, disk_mib=2048),
            ),
            {},
        ),
        "kernel-env": (
            SandboxSpec(
                workspace="bob",
                name="notebook",
                purpose="kernel",
                environment=env,
                command=[f"{env}/bin/python", "-m", "ipykernel_launcher"],
            ),
            {"environment": ENV_URL},
        ),
        "build": (
            SandboxSpec(
                workspace="podium",
                name="environment-build",
                purpose="build",
                network=Network.INDEX,
                output_dir=env,
                command=["python3.11", "-I", "/code/build_env.py", "/code/plan.json"],
                limits=Limits(wall_time_s=1800, disk_mib=10240, pids=1024, nofile=4096),
            ),
            {"code": "https://podium.example/sandbox-artifacts/sandbox/envs/.build-x.tar.gz?expires=1&signature=c",
             "upload": "https://podium.example/sandbox-artifacts/sandbox/envs/abc123.tar.gz?expires=1&signature=u"},
        ),
    }


ENV_URL = "https://podium.example/sandbox-artifacts/sandbox/envs/abc123.tar.gz?expires=1&signature=e"


def as_purpose(spec: SandboxSpec, purpose: str, tmp: Path) -> SandboxSpec:
    """``spec`` made valid for ``purpose``: a build has network "index" and an output, and uses no environment."""
    if purpose == "build":
        return spec.model_copy(update={"purpose": "build", "network": Network.INDEX, "environment": None,
                                       "replicas": 1, "output_dir": tmp / "envs" / "out"})
    update: dict[str, Any] = {"purpose": purpose, "output_dir": None}
    if spec.network == Network.INDEX:
        update["network"] = Network.NONE
    if purpose != "server":
        update["replicas"] = 1
    if purpose not in ("oneshot",):
        update["limits"] = spec.limits.model_copy(update={"wall_time_s": None})
    return spec.model_copy(update=update)


URLS = {"environment": ENV_URL, "upload": ENV_URL + "&put"}


@pytest.mark.parametrize("case", ["server-gpu", "oneshot", "kernel-env", "build"])
def test_it_renders_jobs_matching_the_golden_files(case: str, tmp_path: Path) -> None:
    spec, urls = golden_cases(tmp_path)[case]
    rendered = nomad_jobs.render_text(nomad_jobs.build_job(spec, f"{spec.name}-0000", SETTINGS, urls))
    path = GOLDEN / f"{case}.json"
    if os.environ.get("PODIUM_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text()


def _all_tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [task for group in job["Job"]["TaskGroups"] for task in group["Tasks"]]


def test_every_purpose_is_rendered() -> None:
    assert set(typing.get_args(Purpose)) == set(nomad_jobs.RENDERED_PURPOSES)


def test_a_build_is_a_batch_job_that_uploads_what_it_built(tmp_path: Path) -> None:
    spec, urls = golden_cases(tmp_path)["build"]
    job = nomad_jobs.render(nomad_jobs.build_job(spec, "b-0", SETTINGS, urls))["Job"]
    (group,) = job["TaskGroups"]
    (task,) = group["Tasks"]
    assert job["Type"] == "batch" and group["RestartPolicy"] == {"Attempts": 0, "Mode": "fail"}
    assert group["Networks"] == [{"Mode": "bridge"}]  # outbound for the index; egress rules keep it there
    assert task["User"] == "nobody" and task["Config"]["cap_drop"] == ["all"]
    assert task["Env"]["PODIUM_ENV_DIR"] == "${NOMAD_TASK_DIR}/env"  # the chroot's /local/env
    assert task["Env"]["PODIUM_UPLOAD_URL"] == urls["upload"]
    assert "Services" not in group


def test_a_build_is_refused_what_a_nomad_client_cannot_have(nomad: NomadExecutor, tmp_path: Path) -> None:
    from sandbox.errors import SpecNotSupported

    spec = SandboxSpec(workspace="acme", name="b", purpose="build", command=["true"], network=Network.INDEX,
                       output_dir=tmp_path / "env", cache_dir=tmp_path / "cache")
    with pytest.raises(SpecNotSupported, match="no shared uv cache"):
        nomad.start(spec)


@pytest.mark.parametrize("purpose", nomad_jobs.RENDERED_PURPOSES)
@pytest.mark.parametrize("with_environment", [False, True], ids=["bare", "environment"])
@pytest.mark.parametrize("network", list(Network))
def test_every_task_of_every_purpose_drops_all_capabilities(
    purpose: str, with_environment: bool, network: Network, tmp_path: Path
) -> None:
    env = None
    if with_environment:
        env = tmp_path / "env"
        env.mkdir()
        (env / MARKER).write_text(json.dumps({"requirements": "numpy", "python": "3.11.2"}))
    base = SandboxSpec.model_validate(
        {"workspace": "acme", "name": "caps", "purpose": "oneshot", "command": ["true"], "environment": env}
    )
    spec = as_purpose(base, purpose, tmp_path)
    if purpose != "build":
        spec = spec.model_copy(update={"network": Network.NONE if network == Network.INDEX else network})
    job = nomad_jobs.render(nomad_jobs.build_job(spec, "caps-0", SETTINGS, URLS))
    tasks = _all_tasks(job)
    assert len(tasks) == 1  # no environment prestart task: an environment is an artifact
    for task in tasks:
        assert task["Config"].get("cap_drop") == ["all"], f"{purpose}: task {task['Name']} keeps capabilities"


def test_an_environment_is_fetched_at_the_path_it_was_built_at(tmp_path: Path) -> None:
    spec, urls = golden_cases(tmp_path)["kernel-env"]
    (task,) = _all_tasks(nomad_jobs.render(nomad_jobs.build_job(spec, "k-0", SETTINGS, urls)))
    assert task["Artifacts"] == [{"GetterSource": ENV_URL, "RelativeDest": "local/env", "GetterMode": "dir"}]
    assert task["Config"]["args"][-3] == "${NOMAD_TASK_DIR}/env/bin/python"
    build, _ = golden_cases(tmp_path / "b")["build"]
    (build_task,) = _all_tasks(nomad_jobs.render(nomad_jobs.build_job(build, "b-0", SETTINGS, URLS)))
    assert build_task["Env"]["PODIUM_ENV_DIR"] == task["Env"]["VIRTUAL_ENV"]


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_every_task_in_the_golden_files_drops_all_capabilities(path: Path) -> None:
    for task in _all_tasks(json.loads(path.read_text())):
        assert task["Config"].get("cap_drop") == ["all"], f"{path.name}: task {task['Name']} keeps capabilities"


def test_an_unfilled_placeholder_fails_the_render() -> None:
    template = nomad_jobs._environment.from_string('{"Count": {{ job.count | tojson }}}')
    with pytest.raises(jinja2.UndefinedError):
        template.render(job={})


def test_gpu_requests_become_nvidia_devices_with_constraints(tmp_path: Path) -> None:
    spec, urls = golden_cases(tmp_path)["server-gpu"]
    job = nomad_jobs.render(nomad_jobs.build_job(spec, "x", SETTINGS, urls))["Job"]
    (device,) = job["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"]
    assert device["Name"] == "nvidia/gpu" and device["Count"] == 1
    assert {"LTarget": "${device.attr.memory}", "Operand": ">=", "RTarget": "16384 MiB"} in device["Constraints"]


def test_it_places_gpu_work_on_clients_that_have_gpus(nomad: NomadExecutor, fake: FakeNomad) -> None:
    spec = SandboxSpec(
        workspace="acme",
        name="gpu",
        purpose="oneshot",
        command=["/bin/sh", "-c", "echo gpu"],
        resources=Resources(gpus=2),
    )
    handle = nomad.start(spec)
    assert nomad.wait(handle, timeout=30).state == State.EXITED


def test_it_uses_one_namespace_per_workspace(nomad: NomadExecutor, fake: FakeNomad) -> None:
    alice = nomad.start(SandboxSpec(workspace="alice", name="a", purpose="oneshot", command=["true"]))
    bob = nomad.start(SandboxSpec(workspace="bob", name="b", purpose="oneshot", command=["true"]))
    assert {"podium-alice", "podium-bob"} <= set(fake.namespaces)
    assert fake.jobs[("podium-alice", alice.id)]["Namespace"] == "podium-alice"
    # Bob's sandbox does not exist in Alice's namespace.
    with pytest.raises(SandboxNotFound):
        nomad.poll(bob.model_copy(update={"state": {**bob.state, "namespace": "podium-alice"}}))


def test_it_surfaces_nomads_own_validation_error(fake: FakeNomad) -> None:
    settings = nomad_jobs.NomadSettings(datacenters=["dc1"], driver="")
    broken = NomadExecutor(NomadConfig(address=fake.address, token="t0ken", settings=settings))
    with pytest.raises(SandboxError) as rejected:
        broken.start(SandboxSpec(workspace="acme", name="x", purpose="oneshot", command=["true"]))
    assert not isinstance(rejected.value, SandboxUnavailable)
    assert str(rejected.value) == (
        "Nomad rejected the job: Task group sandbox validation failed: Task sandbox validation failed: "
        "Missing task driver"
    )


def test_a_driver_no_client_has_is_a_placement_failure(fake: FakeNomad) -> None:
    settings = nomad_jobs.NomadSettings(datacenters=["dc1"], driver="chroot-me")
    elsewhere = NomadExecutor(NomadConfig(address=fake.address, token="t0ken", settings=settings))
    with pytest.raises(ResourceUnavailable, match="missing drivers"):
        elsewhere.start(SandboxSpec(workspace="acme", name="x", purpose="oneshot", command=["true"]))


def _register(fake: FakeNomad, job: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{fake.address}/v1/jobs", json=job, headers={"X-Nomad-Token": "t0ken"})


def test_the_fake_refuses_a_short_reschedule_delay_as_nomad_does(fake: FakeNomad, tmp_path: Path) -> None:
    spec, urls = golden_cases(tmp_path)["server-gpu"]
    job = nomad_jobs.render(nomad_jobs.build_job(spec, "bad-delay", SETTINGS, urls))
    job["Job"]["TaskGroups"][0]["ReschedulePolicy"] = {
        "Unlimited": True,
        "Delay": 1 * nomad_jobs.SECOND_NS,
        "DelayFunction": "exponential",
        "MaxDelay": 60 * nomad_jobs.SECOND_NS,
    }
    answer = _register(fake, job)
    status, body = (samples_dir() / "errors" / "register-invalid-job.txt").read_text().split("\n", 1)
    assert (f"HTTP {answer.status_code}", answer.text) == (status, body)


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        ({"RestartPolicy": {"Attempts": 0, "Mode": "delay"}}, 'Restart policy "delay" with 0 attempts is ambiguous'),
        ({"RestartPolicy": {"Attempts": 1, "Interval": 10**9}}, "Interval can not be less than 5s (got 1s)"),
        (
            {"ReschedulePolicy": {"Unlimited": True, "Delay": 5 * 10**9, "MaxDelay": 10**9}},
            "Max Delay cannot be less than Delay 5s (got 1s)",
        ),
    ],
)
def test_the_fake_applies_nomads_policy_rules(fake: FakeNomad, policy: dict[str, Any], error: str) -> None:
    spec = SandboxSpec(workspace="acme", name="rules", purpose="server", command=["true"])
    job = nomad_jobs.render(nomad_jobs.build_job(spec, "rules-0", SETTINGS, {}))
    job["Job"]["TaskGroups"][0].update(policy)
    answer = _register(fake, job)
    assert answer.status_code == 500 and f"\t* {error}\n" in answer.text, answer.text


@pytest.mark.parametrize("purpose", nomad_jobs.RENDERED_PURPOSES)
@pytest.mark.parametrize("attempts", [0, 1, 5, 1000])
def test_every_job_podium_renders_passes_nomads_validation(purpose: str, attempts: int, tmp_path: Path) -> None:
    for spec, urls in golden_cases(tmp_path / str(attempts)).values():
        spec = as_purpose(spec, purpose, tmp_path).model_copy(
            update={"restart": RestartPolicy(attempts=attempts, backoff_s=7)}
        )
        job = nomad_jobs.render(nomad_jobs.build_job(spec, "valid-0", SETTINGS, {**URLS, **urls}))["Job"]
        FakeNomad.validate(canonicalize(job))


def test_a_server_restarts_in_place_then_fails_and_is_never_rescheduled(tmp_path: Path) -> None:
    spec = SandboxSpec(
        workspace="acme", name="s", purpose="server", command=["true"], restart=RestartPolicy(attempts=3)
    )
    (group,) = nomad_jobs.render(nomad_jobs.build_job(spec, "s-0", SETTINGS, {}))["Job"]["TaskGroups"]
    assert group["RestartPolicy"]["Mode"] == "fail" and group["RestartPolicy"]["Attempts"] == 3
    assert group["ReschedulePolicy"] == {"Attempts": 0, "Unlimited": False}


def test_the_fakes_restart_modes_follow_nomad() -> None:
    fail = _RestartTracker({"Attempts": 1, "Interval": 300 * 10**9, "Delay": 10**9, "Mode": "fail"}, False, False)
    assert fail.next(1) == ("restart", "Restart within policy", 1.0)
    assert fail.next(1) == ("fail", 'Exceeded allowed attempts 1 in interval 5m0s and mode is "fail"', 0.0)
    none = _RestartTracker({"Attempts": 0, "Interval": 300 * 10**9, "Delay": 10**9, "Mode": "fail"}, True, False)
    assert none.next(0)[0] == "done" and none.next(3) == ("fail", "Policy allows no restarts", 0.0)
    delay = _RestartTracker({"Attempts": 1, "Interval": 300 * 10**9, "Delay": 10**9, "Mode": "delay"}, False, False)
    delay.next(1)
    decision, reason, wait = delay.next(1)
    assert (decision, reason) == ("restart", "Exceeded allowed attempts, applying a delay") and wait > 300


def test_it_sends_its_acl_token(fake: FakeNomad) -> None:
    anonymous = NomadExecutor(NomadConfig(address=fake.address, token="wrong", settings=SETTINGS))
    ok, message = anonymous.health()
    assert not ok
    with pytest.raises(SandboxUnavailable) as refused:
        anonymous.start(SandboxSpec(workspace="acme", name="x", purpose="oneshot", command=["true"]))
    assert "Permission denied" in str(refused.value)


def test_a_token_that_may_not_create_namespaces_gets_the_command_to_run(nomad: NomadExecutor, fake: FakeNomad) -> None:
    fake.token_may_create_namespaces = False
    try:
        with pytest.raises(SandboxUnavailable) as refused:
            nomad.start(SandboxSpec(workspace="newcomer", name="x", purpose="oneshot", command=["true"]))
    finally:
        fake.token_may_create_namespaces = True
    message = str(refused.value)
    assert "management token" in message
    assert 'nomad namespace apply -description "Podium workspace newcomer" podium-newcomer' in message


def test_health_fails_when_the_agent_does_not_answer() -> None:
    ok, message = NomadExecutor(NomadConfig(address="http://127.0.0.1:9", settings=SETTINGS)).health()
    assert not ok and "127.0.0.1:9" in message


def test_a_signed_url_verifies_until_it_expires_and_not_when_altered() -> None:
    url = urlparse(sign_url("https://podium.example/a", "models/m/1.tar.gz", b"key", ttl_s=60, now=1000))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    path = unquote(url.path.removeprefix("/a/"))
    assert verify_signature(path, query["expires"], query["signature"], b"key", now=1030)
    assert not verify_signature(path, query["expires"], query["signature"], b"key", now=1061)
    assert not verify_signature("models/other/1.tar.gz", query["expires"], query["signature"], b"key", now=1030)
    assert not verify_signature(path, query["expires"], query["signature"], b"other", now=1030)


@pytest.fixture
def artifact_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Stands in for Podium's artifact view: verifies the signature, serves a tarball."""
    root = tmp_path / "store"
    root.mkdir()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            relative = unquote(url.path.removeprefix("/sandbox-artifacts/"))
            if not verify_signature(relative, query.get("expires", ""), query.get("signature", ""), b"k"):
                self.send_response(403)
                self.end_headers()
                return
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
                archive.add(root / relative.removesuffix(".tar.gz"), arcname=".")
            self.send_response(200)
            self.send_header("Content-Length", str(len(buffer.getvalue())))
            self.end_headers()
            self.wfile.write(buffer.getvalue())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sandbox-artifacts", root
    server.shutdown()


def test_code_reaches_the_task_through_a_signed_url(fake: FakeNomad, artifact_server: tuple[str, Path]) -> None:
    base_url, root = artifact_server
    code = root / "models" / "churn" / "3"
    code.mkdir(parents=True)
    (code / "hello.txt").write_text("hello from the bundle\n")
    executor = NomadExecutor(
        NomadConfig(
            address=fake.address,
            token="t0ken",
            settings=SETTINGS,
            artifact_url=base_url,
            artifact_root=root,
            signing_key=b"k",
        )
    )
    handle = executor.start(
        SandboxSpec(
            workspace="acme",
            name="code",
            purpose="oneshot",
            code_dir=code,
            command=["/bin/sh", "-c", 'cat "$PODIUM_CODE_DIR/hello.txt"'],
        )
    )
    status = executor.wait(handle, timeout=30)
    assert status.state == State.EXITED, status
    assert [line.text for line in executor.logs(handle)] == ["hello from the bundle"]


def test_a_command_naming_the_specs_code_mount_runs_on_nomad(
    fake: FakeNomad, artifact_server: tuple[str, Path]
) -> None:
    base_url, root = artifact_server
    code = root / "models" / "churn" / "4"
    (code / "_podium").mkdir(parents=True)
    (code / "_podium" / "hello.sh").write_text('echo "hello from $0"\n')
    executor = NomadExecutor(
        NomadConfig(
            address=fake.address,
            token="t0ken",
            settings=SETTINGS,
            artifact_url=base_url,
            artifact_root=root,
            signing_key=b"k",
        )
    )
    spec = SandboxSpec(
        workspace="acme", name="layout", purpose="oneshot", code_dir=code, command=["/bin/sh", "/code/_podium/hello.sh"]
    )
    handle = executor.start(spec)
    assert executor.wait(handle, timeout=30).state == State.EXITED
    (line,) = [line.text for line in executor.logs(handle)]
    assert line.startswith("hello from ") and line.endswith("/code/_podium/hello.sh")


def test_no_path_of_the_local_layout_is_left_in_a_job(tmp_path: Path) -> None:
    spec, urls = golden_cases(tmp_path)["server-gpu"]
    spec = spec.model_copy(update={"command": ["python", "/code/_podium/model_server.py", "/code/bundle"]})
    (task,) = _all_tasks(nomad_jobs.render(nomad_jobs.build_job(spec, "x", SETTINGS, urls)))
    assert task["Artifacts"][0]["RelativeDest"] == "code"  # /code inside the exec chroot
    values = [*task["Config"]["args"], *task["Env"].values()]
    assert not [value for value in values if value.startswith(("/code", "/artifacts", str(tmp_path)))]
    assert task["Config"]["args"][-2:] == [
        "${NOMAD_TASK_DIR}/../code/_podium/model_server.py",
        "${NOMAD_TASK_DIR}/../code/bundle",
    ]


def test_code_outside_the_artifact_store_is_refused(nomad: NomadExecutor, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="outside the artifact store"):
        nomad.start(SandboxSpec(workspace="acme", name="x", purpose="oneshot", command=["true"], code_dir=tmp_path))


def test_status_lists_what_nomad_cannot_enforce(nomad: NomadExecutor) -> None:
    handle = nomad.start(SandboxSpec(workspace="acme", name="w", purpose="oneshot", command=["true"]))
    assert any("process limit" in warning for warning in nomad.wait(handle, timeout=30).warnings)


def _sample_allocation(case: str) -> dict[str, Any]:
    (path,) = (samples_dir() / case).glob("allocation-*.json")
    alloc: dict[str, Any] = json.loads(path.read_text())
    return alloc


def _oneshot_handle() -> SandboxHandle:
    spec = SandboxSpec(workspace="demo", name="t", purpose="oneshot", command=["true"])
    state = {"namespace": "podium-demo", "purpose": "oneshot", "limits": spec.limits.model_dump(), "memory_mib": 512}
    return SandboxHandle(executor="nomad", id="t-0", state=state)


def test_a_setup_failure_reaches_the_user_with_nomads_message(nomad: NomadExecutor) -> None:
    alloc = _sample_allocation("oneshot-network-none-setup-failure")
    replica = nomad._replica(_oneshot_handle(), alloc, stopping=False)
    assert replica.state == State.FAILED and replica.exit_code is None
    assert replica.reason == (
        'the sandbox could not start: failed to setup alloc: pre-run hook "network" failed: '
        "network already configured but not found in state"
    )


def test_a_failed_prestart_in_a_capture_names_the_environment(nomad: NomadExecutor) -> None:
    replica = nomad._replica(_oneshot_handle(), _sample_allocation("oneshot-environment-without-network"), False)
    assert replica.state == State.FAILED
    assert replica.reason == "building the environment failed before the sandbox started (exit code 2)"


ANSWER_500 = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PODIUM_LISTEN"].rsplit(":", 1)[1])), H).serve_forever()
"""


@pytest.mark.parametrize(
    "command",
    [["/bin/sh", "-c", "exec sleep 30"], [sys.executable, "-c", ANSWER_500]],
    ids=["not-listening", "answering-500"],
)
def test_it_routes_only_to_replicas_whose_checks_pass(
    nomad: NomadExecutor, fake: FakeNomad, command: list[str]
) -> None:
    handle = nomad.start(SandboxSpec(workspace="acme", name="unready", purpose="server", command=command))
    try:
        assert nomad.wait(handle, timeout=20, until=frozenset({State.RUNNING})).state == State.RUNNING
        time.sleep(0.5)
        registered = fake.services[("podium-acme", handle.id)]
        assert registered and nomad.addresses(handle) == []
    finally:
        nomad.stop(handle, grace_s=1)


DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nomad"


def test_the_shipped_cni_network_is_the_one_jobs_name_and_holds_only_loopback() -> None:
    conflist = json.loads((DEPLOY / "podium-isolated.conflist").read_text())
    assert conflist["name"] == nomad_jobs.NomadSettings().isolated_network
    assert conflist["plugins"] == [{"type": "loopback"}]


def test_the_shipped_client_configuration_keeps_the_host_out_of_the_chroot() -> None:
    client = (DEPLOY / "client.hcl").read_text()
    assert 'cni_path       = "/usr/lib/cni"' in client and 'allow_caps       = ["kill"]' in client
    (block,) = re.findall(r"chroot_env \{(.*?)\n  \}", client, re.S)
    sources = re.findall(r'^\s*"([^"]+)"\s*=', block, re.M)
    assert sources, "chroot_env is empty"
    for forbidden in ("/etc", "/usr", "/usr/bin", "/bin", "/sbin", "/usr/sbin", "/etc/shadow"):
        assert forbidden not in sources, f"chroot_env links {forbidden} into every task"


def test_nomad_check_prints_each_step_and_fails_on_capabilities_the_fake_cannot_drop(fake: FakeNomad) -> None:
    executor = NomadExecutor(NomadConfig(address=fake.address, token="t0ken", settings=SETTINGS, signing_key=b"k"))
    out = io.StringIO()
    assert not nomad_check.run(executor, out, python=sys.executable, timeout=20)
    report = out.getvalue()
    for purpose in ("server", "kernel"):
        for step in ("registered", "placed", "running", "healthy (checks pass)", "logs", "stopped"):
            assert re.search(rf"{purpose} +ok   {re.escape(step)}", report), report
    assert re.search(r"oneshot +ok   ran to the end", report), report
    # The fake runs tasks as local processes with this test's capabilities: the check must say so.
    assert re.search(r"oneshot +FAIL capabilities 0: CapPrm", report) or "ok   capabilities 0" in report, report
