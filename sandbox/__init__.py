"""Podium's sandbox runtime: every line of user code runs in a sandbox.

Entry point for callers: ``get_executor()`` returns the configured executor
(``PODIUM_EXECUTOR``: ``local`` by default, or ``nomad``). Backends are named in
``EXECUTORS`` by dotted path and imported only when chosen, so the web process
never imports the Nomad client unless it is configured.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from typing import TYPE_CHECKING

from sandbox.errors import (
    EnvironmentBuildError,
    ResourceUnavailable,
    SandboxError,
    SandboxNotFound,
    SandboxUnavailable,
    SpecNotSupported,
)
from sandbox.spec import (
    GpuConstraints,
    HealthCheck,
    Limits,
    LogLine,
    Network,
    Resources,
    RestartPolicy,
    SandboxHandle,
    SandboxSpec,
    SandboxStatus,
    State,
)

if TYPE_CHECKING:
    from sandbox.executors.base import Executor

EXECUTORS: dict[str, str] = {
    "local": "sandbox.executors.local.LocalExecutor",
    "nomad": "sandbox.executors.nomad.NomadExecutor",
}

__all__ = [
    "EXECUTORS",
    "EnvironmentBuildError",
    "GpuConstraints",
    "Limits",
    "LogLine",
    "Network",
    "ResourceUnavailable",
    "Resources",
    "HealthCheck",
    "RestartPolicy",
    "SandboxError",
    "SandboxHandle",
    "SandboxNotFound",
    "SandboxSpec",
    "SandboxStatus",
    "SandboxUnavailable",
    "SpecNotSupported",
    "State",
    "executor_class",
    "get_executor",
]


def _configured_name() -> str:
    try:
        from django.conf import settings

        if settings.configured:
            return str(getattr(settings, "PODIUM_EXECUTOR", "local"))
    except ImportError:
        pass
    return os.environ.get("PODIUM_EXECUTOR", "").strip() or "local"


def executor_class(name: str) -> type[Executor]:
    """Import the executor class registered under ``name``."""
    try:
        dotted = EXECUTORS[name]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise SandboxError(f"PODIUM_EXECUTOR={name!r} is not an executor; choose one of: {known}") from None
    module_name, _, attr = dotted.rpartition(".")
    cls: type[Executor] = getattr(importlib.import_module(module_name), attr)
    return cls


@cache
def _executor(name: str) -> Executor:
    return executor_class(name)()


def get_executor(name: str | None = None) -> Executor:
    """The executor named by ``name`` or by ``PODIUM_EXECUTOR`` (Django setting
    when Django is configured, else the environment), built once per process."""
    return _executor(name or _configured_name())
