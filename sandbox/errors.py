"""Errors every executor raises, so callers handle one set whichever backend runs.

The message of each error is written for the person who asked for the sandbox:
it says what was asked, what exists, and what to change.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class: something about a sandbox could not be done."""


class SandboxUnavailable(SandboxError):
    """The executor cannot run any sandbox right now (bubblewrap missing or broken,
    supervisor or Nomad agent unreachable). Podium fails closed: there is no
    unsandboxed fallback."""


class ResourceUnavailable(SandboxError):
    """The spec asks for resources this executor cannot give (for example more GPUs
    than the host has). The message names what was asked and what exists."""


class SpecNotSupported(SandboxError):
    """The spec asks for something this executor cannot enforce (for example
    outbound network on the local executor). Raised instead of silently ignoring it."""


class SandboxNotFound(SandboxError):
    """No sandbox with this id is known to the executor."""


class EnvironmentBuildError(SandboxError):
    """Building an environment failed; ``output`` holds the installer's own output."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class RequirementRefused(EnvironmentBuildError):
    """A requirement line cannot be installed safely (an option that reads files or changes the index, a path
    outside the bundle, a URL without outbound network). The message names the line and what to do."""

    def __init__(self, number: int, line: str, reason: str) -> None:
        super().__init__(f"requirements line {number} ({line!r}): {reason}")
        self.number = number
        self.line = line
        self.reason = reason
