"""The Executor interface: one contract, several backends (local, nomad).

Modelled on JupyterHub's ``Spawner``: each method documents what it must do and
return, so a backend (or a test fake) can be checked against the contract suite
in ``tests/sandbox/test_contract.py``. Executors are cheap, stateless clients:
everything they need to find a sandbox again lives in the ``SandboxHandle`` they
returned from ``start`` (persist it; any process may hand it back later), and in
the backend itself (the supervisor's state directory, or the Nomad cluster).

Addresses are strings: ``unix:/abs/path.sock`` (local) or ``http://host:port``
(Nomad). Inside the sandbox the server learns where to listen from
``PODIUM_LISTEN`` (``unix:/run/podium/server.sock`` or ``tcp:0.0.0.0:PORT``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from sandbox.errors import SandboxError
from sandbox.spec import LogLine, SandboxHandle, SandboxSpec, SandboxStatus, State


class Executor(ABC):
    """Starts, watches and stops sandboxes.

    Every method raises ``SandboxNotFound`` for a handle the backend does not
    know, and ``SandboxUnavailable`` when the backend cannot be reached or cannot
    sandbox safely (fail closed: never an unsandboxed fallback).
    """

    #: the key in ``sandbox.EXECUTORS`` and in ``SandboxHandle.executor``
    name: ClassVar[str]
    #: whether ``network="outbound"`` can be given without exposing the platform's own services;
    #: a backend that cannot refuses such a spec with ``SpecNotSupported``
    supports_outbound_network: ClassVar[bool] = False

    @abstractmethod
    def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Start all replicas of ``spec`` and return without waiting for them.

        Must validate everything it can before starting anything: raises
        ``ResourceUnavailable`` (naming what was asked and what exists) when
        resources such as GPUs cannot be given, ``SpecNotSupported`` for an
        option this backend cannot enforce. Returns a handle whose
        ``model_dump_json()`` is enough to find the sandbox again after any
        restart of the caller or of the platform.
        """

    @abstractmethod
    def poll(self, handle: SandboxHandle) -> SandboxStatus:
        """Return the sandbox's current status without blocking.

        ``state`` is ``running`` once every replica has started; final states
        are ``exited`` (code 0), ``failed`` (non-zero, killed, or a limit hit:
        ``limit`` and ``reason`` name it) and ``stopped`` (asked to stop).
        ``restarts`` counts automatic restarts of crashed server replicas.
        """

    @abstractmethod
    def stop(self, handle: SandboxHandle, grace_s: float = 5.0) -> SandboxStatus:
        """Stop every replica: SIGTERM, then SIGKILL after ``grace_s``. Idempotent:
        stopping a finished sandbox returns its final status unchanged. Returns
        once everything has ended and its scratch space is wiped; logs are kept."""

    @abstractmethod
    def logs(self, handle: SandboxHandle, *, follow: bool = False, tail: int | None = None) -> Iterator[LogLine]:
        """Yield the sandbox's output, oldest first, timestamped per line.

        ``tail`` limits to the last N lines. With ``follow`` the iterator keeps
        yielding new lines as they are written and ends when the sandbox is done
        (a websocket consumer can relay it line by line). Logs outlive the
        sandbox.
        """

    @abstractmethod
    def addresses(self, handle: SandboxHandle) -> list[str]:
        """Addresses of the replicas that are running now (empty when none is).
        A server is only *ready* once it accepts connections there."""

    @abstractmethod
    def health(self) -> tuple[bool, str]:
        """Whether this executor can start sandboxes now, and why not in words.
        Called by the web's /healthz; must answer within about a second."""

    # Helpers shared by all executors, built on the methods above.

    def address(self, handle: SandboxHandle) -> str:
        """The first running replica's address; ``SandboxError`` when none runs."""
        found = self.addresses(handle)
        if not found:
            raise SandboxError(f"sandbox {handle.id} has no running replica")
        return found[0]

    def wait(
        self, handle: SandboxHandle, timeout: float = 60.0, until: frozenset[State] | None = None
    ) -> SandboxStatus:
        """Poll until the sandbox reaches a final state (or one in ``until``) or
        ``timeout`` seconds pass; returns the last status either way."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            status = self.poll(handle)
            if status.done or (until is not None and status.state in until):
                return status
            if time.monotonic() >= deadline:
                return status
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
