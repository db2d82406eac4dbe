"""The typed sandbox spec, and what executors report back about a sandbox.

Terms used across the sandbox package:

- **sandbox**: one unit of user code started by an executor from a ``SandboxSpec``;
  it has ``replicas`` copies (each a *replica*) that share the spec.
- **purpose**: ``server`` (long-running, restarted on crash, reachable at an
  address), ``oneshot`` (runs to completion under a wall-time limit, never
  restarted), ``kernel`` (a long-running notebook kernel: reachable, but not
  restarted because a restart would silently lose the user's state) or
  ``build`` (a oneshot that installs an environment: it alone may write, to its
  ``output_dir`` and ``cache_dir``; the output is sealed read-only when it
  succeeds).
- **handle**: the JSON-serialisable ``SandboxHandle`` an executor returns from
  ``start``; store it and hand it back later, from any process, to find the
  sandbox again (JupyterHub's ``get_state``/``load_state``).
- **limit**: one of memory, process, cpu time, time, disk. When a sandbox ends
  because it hit one, ``SandboxStatus.limit`` names it and ``reason`` says so in
  words for the user.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$"

# The sandbox's layout, one definition every executor honours (sandbox.profile binds these locally; the Nomad
# executor fetches each into the task directory, which the exec chroot shows at the same paths).
CODE_MOUNT = "/code"  # code_dir, read-only
ARTIFACT_MOUNT = "/artifacts"  # artifact_dir, read-only
#: The environment in a local sandbox: a build sandbox builds the venv here (venvs hold absolute paths) and
#: every sandbox that uses it mounts it here, read-only, so no sandbox sees where environments live on the host.
ENV_MOUNT = "/env"
#: On Nomad, where a built environment lives, relative to the task directory (the exec chroot shows it at
#: ``/local/env``): the build job builds it there and every job that uses it unpacks it there, because a venv
#: holds absolute paths. Locally an environment is bound at ``ENV_MOUNT``, for the same reason.
NOMAD_ENVIRONMENT = "local/env"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names the runtime sets itself; a spec cannot override them.
RESERVED_ENV_PREFIXES = ("PODIUM_", "NOMAD_", "LD_", "CUDA_VISIBLE", "NVIDIA_VISIBLE")

def check_env(value: dict[str, str]) -> dict[str, str]:
    """Environment variables user code may set: valid names, none of the ones Podium sets, no NUL bytes.
    (A model's podium.json ``env`` is checked with this too, at upload.)"""
    for name, text in value.items():
        if not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        if name.upper().startswith(RESERVED_ENV_PREFIXES):
            raise ValueError(f"{name} is set by Podium and cannot be overridden")
        if "\0" in text:
            raise ValueError(f"{name} contains a NUL byte")
    return value


Purpose = Literal["server", "oneshot", "kernel", "build"]
LimitName = Literal["memory", "process", "cpu time", "time", "disk"]


class Network(StrEnum):
    """Network policy. ``none``: no network at all except the sandbox's unix
    socket (local) or its allocated port (Nomad). ``outbound``: internet access,
    only when a workspace admin allows it, and never the platform's own services."""

    NONE = "none"
    OUTBOUND = "outbound"
    #: builds only: the package index the operator configured, and nothing else (locally through a proxy that
    #: allows only the index's hosts)
    INDEX = "index"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuConstraints(_Model):
    """Optional constraints on which GPUs qualify."""

    min_memory_mib: int | None = Field(default=None, ge=1)
    model: str | None = Field(default=None, min_length=1, max_length=64, description="substring of the model name")


class Resources(_Model):
    cpu: float = Field(default=1.0, gt=0, le=128, description="cores")
    memory_mib: int = Field(default=512, ge=32, le=1024 * 1024)
    gpus: int = Field(default=0, ge=0, le=16)
    gpu: GpuConstraints | None = None

    @model_validator(mode="after")
    def _constraints_need_gpus(self) -> Resources:
        if self.gpu is not None and self.gpus == 0:
            raise ValueError("GPU constraints were given but gpus is 0")
        return self


class Limits(_Model):
    """Hard limits. Hitting one ends the replica and names the limit."""

    wall_time_s: float | None = Field(default=None, gt=0, description="oneshot runs only; default 3600")
    cpu_time_s: int | None = Field(default=None, gt=0, description="CPU seconds (RLIMIT_CPU)")
    disk_mib: int = Field(default=1024, ge=1, description="scratch + /tmp")
    pids: int = Field(default=256, ge=4, le=65536)
    nofile: int = Field(default=1024, ge=16, le=1 << 20)


class RestartPolicy(_Model):
    """How a crashed ``server`` replica is restarted: after ``backoff_s``, doubling
    up to ``max_backoff_s``; after ``attempts`` crashes without ``reset_after_s`` of
    healthy running in between, the sandbox is failed."""

    attempts: int = Field(default=5, ge=0, le=1000)
    backoff_s: float = Field(default=1.0, ge=0, le=3600)
    max_backoff_s: float = Field(default=60.0, ge=0, le=3600)
    reset_after_s: float = Field(default=60.0, ge=1)


class HealthCheck(_Model):
    """How a ``server`` replica is probed while it runs: ``GET path`` on its socket every
    ``interval_s``; after ``failures`` probes in a row without a 200 within ``timeout_s``
    (it is stopped, deadlocked, or its socket is gone, whatever the reason) the replica is
    killed and restarted by its restart policy. Misses do not count until the replica has
    answered once or ``start_s`` have passed (an interpreter still starting)."""

    path: str = Field(default="/healthz", pattern=r"^/[A-Za-z0-9/_.-]*$")
    interval_s: float = Field(default=10.0, gt=0, le=3600)  # as the Nomad job's check
    timeout_s: float = Field(default=2.0, gt=0, le=600)
    failures: int = Field(default=3, ge=1, le=100)
    start_s: float = Field(default=60.0, ge=0, le=3600)


class SandboxSpec(_Model):
    """Everything an executor needs to run one sandbox. Paths are host paths."""

    workspace: str = Field(pattern=SLUG)
    name: str = Field(pattern=SLUG, description="what runs, e.g. 'churn-model-v3'")
    purpose: Purpose
    command: list[str] = Field(min_length=1)
    code_dir: Path | None = Field(default=None, description="mounted read-only at /code")
    artifact_dir: Path | None = Field(default=None, description="mounted read-only at /artifacts")
    environment: Path | None = Field(default=None, description="a built venv, mounted read-only")
    env: dict[str, str] = Field(default_factory=dict)
    replicas: int = Field(default=1, ge=1, le=64)
    resources: Resources = Resources()
    limits: Limits = Limits()
    network: Network = Network.NONE
    restart: RestartPolicy = RestartPolicy()
    health: HealthCheck = HealthCheck()  # servers only
    output_dir: Path | None = Field(
        default=None, description="build only: mounted writable at the same path; sealed read-only on success"
    )
    cache_dir: Path | None = Field(default=None, description="build only: mounted writable at /cache, kept")
    read_only_paths: list[Path] = Field(
        default_factory=list, max_length=32,
        description="build only: host paths the installer reads (the interpreter, uv, local package indexes), "
        "mounted read-only at the same path",
    )

    @field_validator("code_dir", "artifact_dir", "environment", "output_dir", "cache_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
        return value

    @field_validator("command")
    @classmethod
    def _no_nul(cls, value: list[str]) -> list[str]:
        if any("\0" in arg for arg in value) or not value[0]:
            raise ValueError("command arguments must be non-empty strings without NUL bytes")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env(value)

    @field_validator("read_only_paths")
    @classmethod
    def _absolute_paths(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute() or ".." in path.parts:
                raise ValueError(f"{path} is not an absolute path")
        return value

    @model_validator(mode="after")
    def _purpose_rules(self) -> SandboxSpec:
        if self.purpose != "server" and self.replicas != 1:
            raise ValueError(f"a {self.purpose} sandbox runs exactly one replica")
        if not self.runs_to_completion and self.limits.wall_time_s is not None:
            raise ValueError("wall_time_s applies to oneshot runs and builds only")
        if self.purpose != "build" and (self.output_dir or self.cache_dir or self.read_only_paths):
            raise ValueError("output_dir, cache_dir and read_only_paths are for builds only")
        if (self.network == Network.INDEX) != (self.purpose == "build"):
            raise ValueError("network 'index' is for builds, and builds have network 'index'")
        if self.purpose == "build" and self.output_dir is None:
            raise ValueError("a build needs an output_dir")
        return self

    @property
    def runs_to_completion(self) -> bool:
        return self.purpose in ("oneshot", "build")

    @property
    def wall_time_s(self) -> float | None:
        if self.runs_to_completion:
            return self.limits.wall_time_s or 3600.0
        return None

    @property
    def restarts_on_crash(self) -> bool:
        return self.purpose == "server"


class State(StrEnum):
    """Lifecycle of a sandbox. ``exited`` (all replicas ended with 0), ``failed``
    and ``stopped`` are final."""

    PENDING = "pending"
    RUNNING = "running"
    RESTARTING = "restarting"
    EXITED = "exited"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def done(self) -> bool:
        return self in (State.EXITED, State.FAILED, State.STOPPED)


class ReplicaStatus(_Model):
    index: int
    state: State
    exit_code: int | None = None
    reason: str | None = None
    limit: LimitName | None = None
    restarts: int = 0
    last_exit: str | None = Field(default=None, description="why it last ended (kept once it is restarted)")
    address: str | None = None


class SandboxStatus(_Model):
    """A point-in-time view. ``reason``/``limit`` explain a non-zero end."""

    id: str
    state: State
    exit_code: int | None = None
    reason: str | None = None
    limit: LimitName | None = None
    restarts: int = 0
    replicas: list[ReplicaStatus] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state.done


class SandboxHandle(_Model):
    """What ``Executor.start`` returns. Persist ``model_dump_json()`` and restore it
    with ``SandboxHandle.model_validate_json`` in any process to find the sandbox
    again. ``state`` is opaque and owned by the executor that made it."""

    executor: str
    id: str
    state: dict[str, Any] = Field(default_factory=dict)


class LogLine(_Model):
    time: datetime
    stream: Literal["stdout", "stderr", "system"]
    replica: int = 0
    text: str
