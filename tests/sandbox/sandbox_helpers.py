"""Small helpers the sandbox tests share."""

from __future__ import annotations

from typing import Any

from sandbox import SandboxSpec, SandboxStatus
from sandbox.executors.base import Executor

PYTHON = "/usr/bin/python3"


def oneshot(code: str, python: str = PYTHON, **fields: Any) -> SandboxSpec:
    return SandboxSpec.model_validate(
        {"workspace": "acme", "name": "check", "purpose": "oneshot", "command": [python, "-c", code], **fields}
    )


def run(
    executor: Executor, code: str, timeout: float = 30, python: str = PYTHON, **fields: Any
) -> tuple[SandboxStatus, str]:
    """Run ``code`` in a one-shot sandbox; return its final status and stdout."""
    handle = executor.start(oneshot(code, python=python, **fields))
    status = executor.wait(handle, timeout=timeout)
    assert status.done, f"sandbox still {status.state} after {timeout} s"
    out = "\n".join(line.text for line in executor.logs(handle) if line.stream == "stdout")
    return status, out
