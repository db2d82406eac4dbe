"""Render a ``SandboxSpec`` into a Nomad job (JSON, as the HTTP API takes it).

The templates live in ``nomad-jobs/`` (one per purpose: ``server``,
``oneshot``, ``kernel``, ``build``) and an operator can read them, render one with
``python -m sandbox.nomad_jobs spec.json`` and run it by hand with
``nomad job run -json``. Every value is rendered with ``| tojson`` and the
environment uses ``StrictUndefined``: a placeholder without a value fails the
render instead of producing a job that silently differs.

On Nomad, limits map to: ``Resources`` (CPU MHz, MemoryMB, ``nvidia/gpu``
devices with constraints), ``EphemeralDisk`` (disk), ``prlimit`` (CPU seconds,
open files, file size) and ``timeout`` (wall time of one-shot runs, exit 124).
The pids limit has no exec-driver equivalent: ``unenforced()`` says so.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict

from sandbox.environments import MARKER
from sandbox.errors import SandboxError
from sandbox.spec import ARTIFACT_MOUNT, CODE_MOUNT, NOMAD_ENVIRONMENT, SandboxSpec

TEMPLATES = Path(__file__).resolve().parent.parent / "nomad-jobs"
SECOND_NS = 1_000_000_000
RESTART_MIN_INTERVAL_NS = 5 * SECOND_NS  # Nomad refuses a shorter RestartPolicy Interval
TIME_LIMIT_EXIT = 124  # what coreutils' timeout exits with when it had to stop the command
# The purposes rendered as jobs: every one (a build is a batch job that uploads the environment it built).
RENDERED_PURPOSES = ("server", "oneshot", "kernel", "build")


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactData(_Data):
    url: str
    dest: str


class TaskData(_Data):
    name: str
    driver: str
    user: str
    command: str
    args: list[str]
    env: dict[str, str]
    artifacts: list[ArtifactData] = []
    cpu_mhz: int
    memory_mb: int
    gpus: int = 0
    gpu_constraints: list[dict[str, str]] = []
    kill_timeout_ns: int = 5 * SECOND_NS


class RestartData(_Data):
    """A server's in-place restarts (Nomad RestartPolicy, mode "fail")."""

    attempts: int
    interval_ns: int
    delay_ns: int


class JobData(_Data):
    """Everything a template may use; nothing else reaches it."""

    id: str
    namespace: str
    type: str
    region: str
    datacenters: list[str]
    priority: int = 50
    meta: dict[str, str]
    count: int
    restart: RestartData
    disk_mb: int
    network_mode: str
    service_name: str
    tags: list[str]
    check_type: str = "http"
    check_path: str = "/healthz"
    tasks: list[TaskData]


class NomadSettings(_Data):
    """Cluster-specific choices, from the environment (see ``NomadConfig``)."""

    region: str = "global"
    datacenters: list[str] = ["*"]
    namespace_prefix: str = "podium-"
    mhz_per_core: int = 1000
    driver: str = "exec"
    task_user: str = "nobody"
    uv: str = "uv"
    # A CNI network whose conflist holds only the loopback plugin (deploy/nomad/): a one-shot run with
    # network "none" gets a namespace with loopback only. Nomad's own mode "none" fails allocation setup
    # for exec tasks.
    isolated_network: str = "podium-isolated"


def namespace_for(workspace: str, settings: NomadSettings) -> str:
    return f"{settings.namespace_prefix}{workspace}"


def new_job_id(spec: SandboxSpec) -> str:
    return f"{spec.name}-{secrets.token_hex(4)}"


def gpu_constraints(spec: SandboxSpec) -> list[dict[str, str]]:
    wanted = spec.resources.gpu
    if wanted is None:
        return []
    constraints = []
    if wanted.min_memory_mib:
        constraints.append(
            {"LTarget": "${device.attr.memory}", "RTarget": f"{wanted.min_memory_mib} MiB", "Operand": ">="}
        )
    if wanted.model:
        constraints.append({"LTarget": "${device.model}", "RTarget": wanted.model, "Operand": "regexp"})
    return constraints


def environment_requirements(spec: SandboxSpec) -> tuple[str, str] | None:
    """(requirements, python version) of the spec's environment, from its marker."""
    if spec.environment is None:
        return None
    try:
        marker = json.loads((spec.environment / MARKER).read_text())
    except (OSError, ValueError):
        raise SandboxError(f"{spec.environment} is not an environment built by Podium") from None
    return str(marker["requirements"]), str(marker["python"])


def _limit_wrapper(spec: SandboxSpec) -> list[str]:
    limits = spec.limits
    disk = limits.disk_mib * 1024 * 1024
    wrapper = ["prlimit", f"--nofile={limits.nofile}:{limits.nofile}", f"--fsize={disk}:{disk}", "--core=0:0"]
    if limits.cpu_time_s:
        wrapper.append(f"--cpu={limits.cpu_time_s}:{limits.cpu_time_s + 5}")
    wrapper.append("--")
    if spec.wall_time_s is not None:
        wrapper += ["timeout", "--kill-after=5", f"{spec.wall_time_s:g}s"]
    return wrapper


# The spec's layout: code and artifacts are mounted at these paths (sandbox.profile does the same locally).
# On Nomad each is an artifact fetched into the task directory as ``code``/``artifacts``; the exec
# chroot's root is that directory, so the task sees them at /code and /artifacts, and a command naming
# them is written relative to the task directory so that it holds without a chroot too.
MOUNTS = {"code": CODE_MOUNT, "artifacts": ARTIFACT_MOUNT}
TASK_ROOT = "${NOMAD_TASK_DIR}/.."  # the task directory (NOMAD_TASK_DIR is its local/)
# The environment in the task: NOMAD_TASK_DIR is the task's local/ (the chroot's /local), so this is /local/env.
ENV_DIR = "${NOMAD_TASK_DIR}/" + NOMAD_ENVIRONMENT.removeprefix("local/")


def _in_task(arg: str, present: dict[str, str]) -> str:
    """``arg`` with a leading mount path of the spec's layout made relative to the task directory."""
    for key, mount in MOUNTS.items():
        if key in present and (arg == mount or arg.startswith(mount + "/")):
            return f"{TASK_ROOT}/{key}{arg[len(mount) :]}"
    return arg


def build_job(spec: SandboxSpec, job_id: str, settings: NomadSettings, artifact_urls: dict[str, str]) -> JobData:
    """The typed job data for ``spec``. ``artifact_urls`` maps ``code``/``artifacts``/``environment``
    to signed URLs that Nomad clients fetch, and, for a build, ``upload`` to the signed URL the built
    environment is PUT to.

    An environment with requirements is an artifact unpacked at ``local/env`` in the task (built there by
    the build job, so the venv's absolute paths hold); an environment without any is no step at all: the
    command's ``python`` is the client's interpreter of the environment's version."""
    environment = environment_requirements(spec)
    command = list(spec.command)
    env = {
        **spec.env,
        "HOME": "${NOMAD_TASK_DIR}",
        "TMPDIR": "${NOMAD_TASK_DIR}/tmp",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PODIUM_SANDBOX_ID": job_id,
        "PODIUM_REPLICA": "${NOMAD_ALLOC_INDEX}",
        "PODIUM_WORKSPACE": spec.workspace,
        "PODIUM_PURPOSE": spec.purpose,
    }
    if spec.purpose in ("server", "kernel"):
        env["PODIUM_LISTEN"] = "tcp:0.0.0.0:${NOMAD_PORT_http}"
    artifacts = []
    if spec.environment is not None and environment is not None:
        host_env, (requirements, python) = str(spec.environment), environment
        if requirements.strip():
            if "environment" not in artifact_urls:
                raise SandboxError(f"no signed URL for the environment {spec.environment}")
            artifacts.append(ArtifactData(url=artifact_urls["environment"], dest=NOMAD_ENVIRONMENT))
            command = [arg.replace(host_env, ENV_DIR) for arg in command]
            env["VIRTUAL_ENV"] = ENV_DIR
            env["PATH"] = f"{ENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin"
        else:
            interpreter = "python" + ".".join(python.split(".")[:2])
            command = [interpreter if arg in ("python", f"{host_env}/bin/python") else arg for arg in command]
    if spec.purpose == "build":
        if "upload" not in artifact_urls:
            raise SandboxError("a build job needs a signed upload URL for the environment")
        env["PODIUM_ENV_DIR"] = ENV_DIR
        env["PODIUM_UPLOAD_URL"] = artifact_urls["upload"]
    for key in MOUNTS:
        if key in artifact_urls:
            artifacts.append(ArtifactData(url=artifact_urls[key], dest=key))
            env[f"PODIUM_{key.upper().rstrip('S')}_DIR"] = f"{TASK_ROOT}/{key}"
    command = [_in_task(arg, artifact_urls) for arg in command]
    wrapper = _limit_wrapper(spec)
    cpu_mhz = max(100, int(spec.resources.cpu * settings.mhz_per_core))
    main = TaskData(
        name="sandbox",
        driver=settings.driver,
        user=settings.task_user,
        command=wrapper[0],
        args=wrapper[1:] + command,
        env=env,
        artifacts=artifacts,
        cpu_mhz=cpu_mhz,
        memory_mb=spec.resources.memory_mib,
        gpus=spec.resources.gpus,
        gpu_constraints=gpu_constraints(spec),
    )
    return JobData(
        id=job_id,
        namespace=namespace_for(spec.workspace, settings),
        type="batch" if spec.runs_to_completion else "service",
        region=settings.region,
        datacenters=list(settings.datacenters),
        meta={
            "podium_workspace": spec.workspace,
            "podium_name": spec.name,
            "podium_purpose": spec.purpose,
            "podium_network": spec.network.value,
        },
        count=spec.replicas,
        restart=restart_data(spec),
        disk_mb=spec.limits.disk_mib,
        network_mode=f"cni/{settings.isolated_network}" if spec.network == "none" else "bridge",
        service_name=job_id,
        tags=["podium", f"workspace={spec.workspace}", f"purpose={spec.purpose}"],
        check_type="http" if spec.purpose == "server" else "tcp",
        tasks=[main],
    )


def restart_data(spec: SandboxSpec) -> RestartData:
    """The spec's restart policy as Nomad takes it. Nomad refuses an ``Interval``
    under 5 s or shorter than ``Attempts x Delay``; its delay is constant (plus
    jitter), so ``max_backoff_s`` has no equivalent."""
    policy = spec.restart
    delay_ns = int(policy.backoff_s * SECOND_NS)
    interval_ns = max(
        RESTART_MIN_INTERVAL_NS,
        int(policy.reset_after_s * SECOND_NS) * max(1, policy.attempts),
        policy.attempts * delay_ns,
    )
    return RestartData(attempts=policy.attempts, interval_ns=interval_ns, delay_ns=delay_ns)


def unenforced(spec: SandboxSpec) -> list[str]:
    """Limits of ``spec`` that a Nomad job cannot enforce, in words."""
    notes = [f"the process limit ({spec.limits.pids}) is not enforced by Nomad's exec driver"]
    if spec.purpose == "server" and spec.restart.attempts and spec.restart.max_backoff_s > spec.restart.backoff_s:
        notes.append(
            f"restarts wait a constant {spec.restart.backoff_s:g} s on Nomad (its restart delay does not grow "
            f"up to max_backoff_s)"
        )
    if spec.purpose == "build":
        notes.append(
            "a build's network 'index' is the group's bridge network: keeping it to the package index is the "
            "cluster's egress rules' job (see docs/sandbox.md)"
        )
    if spec.network == "none" and spec.purpose != "oneshot":
        notes.append(
            "network 'none' for a reachable sandbox relies on the cluster's bridge firewall "
            "blocking egress from Podium namespaces (see docs/sandbox.md)"
        )
    return notes


def _tojson(value: Any) -> str:
    """JSON for one value; an undefined value fails the render, naming it."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value, sort_keys=True)


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - JSON output; every value goes through tojson
    keep_trailing_newline=True,
)
_environment.filters["tojson"] = _tojson


def render(job: JobData) -> dict[str, Any]:
    """The ``{"Job": {...}}`` body for ``POST /v1/jobs``."""
    template = _environment.get_template(f"{job.meta['podium_purpose']}.json.j2")
    try:
        text = template.render(job=job.model_dump())
    except jinja2.UndefinedError as exc:
        raise SandboxError(f"nomad-jobs/{template.name} has a placeholder without a value: {exc}") from None
    try:
        rendered: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SandboxError(f"nomad-jobs/{template.name} rendered invalid JSON: {exc}") from None
    return rendered


def render_text(job: JobData) -> str:
    """The rendered job as an operator would save it (stable, indented JSON)."""
    return json.dumps(render(job), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sandbox.nomad_jobs", description="Render a sandbox spec (JSON) into a Nomad job."
    )
    parser.add_argument("spec", type=Path)
    parser.add_argument("--job-id", default=None)
    args = parser.parse_args(argv)
    spec = SandboxSpec.model_validate_json(args.spec.read_text())
    from sandbox.executors.nomad import NomadExecutor

    executor = NomadExecutor()  # the URLs are signed as Podium would sign them (PODIUM_ARTIFACT_* settings)
    job_id = args.job_id or new_job_id(spec)
    job = build_job(spec, job_id, executor.config.settings, executor.artifact_urls(spec))
    print(render_text(job), end="")


if __name__ == "__main__":
    main()
