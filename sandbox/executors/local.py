"""The local executor: a client of the supervisor on this host.

All sandboxing happens in ``sandbox.supervisor`` (run as root); this class
only speaks its protocol, so web and worker processes need no privileges. The
handle's state is just the sandbox id: the supervisor persists the rest.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.executors.base import Executor
from sandbox.protocol import Client
from sandbox.spec import LogLine, SandboxHandle, SandboxSpec, SandboxStatus


class LocalExecutor(Executor):
    """Sandboxes on this host under bubblewrap, through ``python -m sandbox.supervisor``.

    Cannot give ``network="outbound"`` (raises ``SpecNotSupported``): a sandbox
    sharing this host's network could reach the platform's own services.
    """

    name = "local"

    def __init__(self, config: SandboxConfig | None = None, socket_path: Path | None = None) -> None:
        self.config = config or SandboxConfig.from_env()
        self.client = Client(socket_path or self.config.socket_path)

    def start(self, spec: SandboxSpec) -> SandboxHandle:
        result = self.client.call("start", spec=spec.model_dump(mode="json"), timeout=120)
        return SandboxHandle(executor=self.name, id=result["id"])

    def poll(self, handle: SandboxHandle) -> SandboxStatus:
        return SandboxStatus.model_validate(self.client.call("poll", id=self._id(handle)))

    def stop(self, handle: SandboxHandle, grace_s: float = 5.0) -> SandboxStatus:
        result = self.client.call("stop", id=self._id(handle), grace_s=grace_s, timeout=grace_s + 60)
        return SandboxStatus.model_validate(result)

    def logs(self, handle: SandboxHandle, *, follow: bool = False, tail: int | None = None) -> Iterator[LogLine]:
        for line in self.client.stream("logs", id=self._id(handle), follow=follow, tail=tail):
            yield LogLine.model_validate(line)

    def addresses(self, handle: SandboxHandle) -> list[str]:
        return list(self.client.call("addresses", id=self._id(handle)))

    def health(self) -> tuple[bool, str]:
        if shutil.which(self.config.bwrap) is None:
            return False, f"bubblewrap ({self.config.bwrap}) is not installed"
        try:
            info = Client(self.client.path, timeout=2).call("ping")
        except SandboxUnavailable as exc:
            return False, str(exc)
        if not info["bwrap_ok"]:
            return False, f"sandbox supervisor refuses to start sandboxes: {info['bwrap']}"
        return True, f"sandbox supervisor up (pid {info['pid']}, {info['running']} running; {info['bwrap']})"

    def _id(self, handle: SandboxHandle) -> str:
        if handle.executor != self.name:
            raise SandboxError(f"sandbox {handle.id} belongs to the {handle.executor} executor, not {self.name}")
        return handle.id
