"""Environments on Nomad: built once per key by a build job that uploads the venv to Podium (the real
artifact view, through Django's live server), then fetched by every job that uses it as an artifact,
with no per-allocation install. Runs against the fake Nomad, whose allocations are local processes."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_nomad import FakeNomad
from test_sandbox_environments import make_wheel

from sandbox import EnvironmentBuildError, SandboxSpec, State, nomad_jobs
from sandbox.environments import MARKER, EnvironmentBuilder, _find_uv, archive_path
from sandbox.executors.nomad import NomadConfig, NomadExecutor

KEY = "k" * 40


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeNomad]:
    fake = FakeNomad(tmp_path_factory.mktemp("nomad")).start()
    yield fake
    fake.close()


@pytest.fixture
def store(tmp_path: Path, settings: Any, live_server: Any) -> tuple[Path, str]:
    """The artifact store and the URL Nomad clients reach it at: Podium's own view."""
    settings.PODIUM_ARTIFACT_ROOT = tmp_path
    settings.PODIUM_ARTIFACT_SIGNING_KEY = KEY
    return tmp_path, f"{live_server.url}/sandbox-artifacts"


def executor_for(fake: FakeNomad, store: tuple[Path, str], uv: str | None = None) -> NomadExecutor:
    root, url = store
    settings = nomad_jobs.NomadSettings(datacenters=["dc1"], uv=uv or _find_uv())
    return NomadExecutor(NomadConfig(address=fake.address, settings=settings, artifact_url=url,
                                     artifact_root=root, signing_key=KEY.encode()))


def builder_for(executor: NomadExecutor, root: Path) -> EnvironmentBuilder:
    wheels = root / "wheels"
    wheels.mkdir(exist_ok=True)
    make_wheel(wheels, "podium_demo", "1.0", "ANSWER = 42\n")
    return EnvironmentBuilder(root=root / "sandbox" / "envs", python=sys.executable, executor=executor,
                              pip_settings={"no-index": "1", "find-links": str(wheels)})


def jobs_of(fake: FakeNomad, purpose: str) -> list[dict[str, Any]]:
    return [job for job in fake.jobs.values() if (job.get("Meta") or {}).get("podium_purpose") == purpose]


def test_a_build_job_builds_once_and_every_job_fetches_the_environment(
    fake: FakeNomad, store: tuple[Path, str]
) -> None:
    root, _ = store
    executor = executor_for(fake, store)
    builder = builder_for(executor, root)
    builds_before = len(jobs_of(fake, "build"))
    lines: list[str] = []
    env = builder.ensure("podium_demo==1.0", tenant="w1", on_output=lines.append)
    assert not env.cached
    assert "podium: environment uploaded" in lines
    assert len(jobs_of(fake, "build")) == builds_before + 1
    (build,) = jobs_of(fake, "build")[-1:]
    (task,) = build["TaskGroups"][0]["Tasks"]
    assert task["User"] == "nobody" and task["Config"]["cap_drop"] == ["all"]
    assert build["Type"] == "batch" and build["TaskGroups"][0]["Networks"] == [{"Mode": "bridge"}]

    archive = archive_path(env.path)
    marker = json.loads((env.path / MARKER).read_text())
    assert marker["archive"] == archive.name and archive.is_file()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert members and all(m.isfile() or m.isdir() for m in members)  # no links: unpacks on any client
    assert not [m.name for m in members if m.mode & 0o222]  # read-only as far as modes go

    # The same key again: the cache, no second build job.
    assert builder.ensure("podium_demo==1.0", tenant="w1").cached
    assert len(jobs_of(fake, "build")) == builds_before + 1

    spec = SandboxSpec(workspace="acme", name="uses-env", purpose="oneshot", environment=env.path,
                       command=["python", "-c", "import podium_demo, sys; print(podium_demo.ANSWER, sys.prefix)"])
    handle = executor.start(spec)
    status = executor.wait(handle, timeout=60)
    logs = [line.text for line in executor.logs(handle)]
    assert status.state == State.EXITED, (status, logs)
    (line,) = logs
    assert line.startswith("42 ") and line.endswith("/sandbox/local/env")  # the task's local/env, as in the chroot
    (job,) = [j for j in fake.jobs.values() if j["ID"] == handle.id]
    (task,) = job["TaskGroups"][0]["Tasks"]  # no environment prestart task: nothing installs per allocation
    assert [a["RelativeDest"] for a in task["Artifacts"]] == ["local/env"]


def test_without_requirements_there_is_no_environment_step(fake: FakeNomad, store: tuple[Path, str]) -> None:
    root, _ = store
    executor = executor_for(fake, store)
    builds_before = len(jobs_of(fake, "build"))
    env = builder_for(executor, root).ensure("", tenant="w1")
    assert len(jobs_of(fake, "build")) == builds_before
    assert not archive_path(env.path).exists()
    spec = SandboxSpec(workspace="acme", name="bare", purpose="oneshot", environment=env.path,
                       command=["python", "-c", "print('bare')"])
    (task,) = nomad_jobs.render(nomad_jobs.build_job(spec, "bare-0", executor.config.settings,
                                                     executor.artifact_urls(spec)))["Job"]["TaskGroups"][0]["Tasks"]
    minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert task["Artifacts"] == [] and minor in task["Config"]["args"] and "python" not in task["Config"]["args"]
    if shutil.which(minor):
        handle = executor.start(spec)
        assert executor.wait(handle, timeout=30).state == State.EXITED
        assert [line.text for line in executor.logs(handle)] == ["bare"]


def test_a_failed_build_job_fails_with_its_own_output(fake: FakeNomad, store: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    root, _ = store
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\necho 'error: Failed to fetch: https://pypi.org/simple/scikit-learn/' >&2\nexit 2\n")
    uv.chmod(0o755)
    builder = builder_for(executor_for(fake, store, uv=str(uv)), root)
    with pytest.raises(EnvironmentBuildError) as failure:
        builder.ensure("scikit-learn==1.5.2", tenant="w1")
    assert "error: Failed to fetch: https://pypi.org/simple/scikit-learn/" in str(failure.value)
    assert builder.lookup("scikit-learn==1.5.2", tenant="w1") is None
    assert not list((root / "sandbox" / "envs").glob("*.tar.gz"))


def test_an_environment_without_its_archive_is_built_again(fake: FakeNomad, store: tuple[Path, str]) -> None:
    """A marker alone (a venv built for the local executor, or by a Podium that installed in each allocation)
    is nothing a Nomad job could fetch."""
    root, _ = store
    builder = builder_for(executor_for(fake, store), root)
    stale = builder.root / builder.key("podium_demo==1.0")
    stale.mkdir(parents=True)
    (stale / MARKER).write_text(json.dumps({"requirements": "podium_demo==1.0", "python": "3.11.2"}))
    assert builder.lookup("podium_demo==1.0", tenant="w1") is None
    env = builder.ensure("podium_demo==1.0", tenant="w1")
    assert env.path == stale and not env.cached and archive_path(stale).is_file()
