"""Where a call to a model goes: alias or version -> versions with weights -> replica addresses.

The gateway asks on every call, so answers are cached in the process. A
promotion or rollback announces itself (:func:`announce`, over Redis) and every
process forgets the model's routes at once; ``TTL`` refreshes them anyway every
second (for replica addresses, which come from the executor), in the
background while the stale route keeps serving.

**While the executor cannot be reached** (``SandboxUnavailable``: the Nomad API
or the supervisor is down) a refresh keeps each version's last known addresses
instead of dropping them: the replicas are most likely still running, and a
control-plane outage must not become a prediction outage. A replica that did
die meanwhile fails its calls as it would anyway (the gateway tries another).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox import SandboxError, SandboxHandle, SandboxUnavailable, State, get_executor
from webapp.core import invalidation
from webapp.serving.models import Alias, Model, ModelVersion

TTL = 1.0


@dataclass
class Target:
    version_id: int
    number: int
    weight: int
    addresses: list[str]
    sandbox: dict[str, Any] | None = None  # the executor's handle of the version's replicas
    _next: int = 0

    def pick_address(self) -> str | None:
        if not self.addresses:
            return None
        self._next = (self._next + 1) % len(self.addresses)  # round robin across replicas
        return self.addresses[self._next]

    def candidates(self) -> list[str]:
        """Every replica address, the round-robin choice first: the gateway hands the call to the next
        one when a replica cannot take it."""
        first = self.pick_address()
        if first is None:
            return []
        start = self.addresses.index(first)
        return self.addresses[start:] + self.addresses[:start]


@dataclass
class Route:
    workspace_id: int
    model_id: int
    model_name: str
    alias: str
    targets: list[Target] = field(default_factory=list)

    def pick(self) -> Target | None:
        live = [t for t in self.targets if t.addresses]
        if not live:
            return None
        return random.choices(live, weights=[t.weight for t in live])[0]  # noqa: S311 - traffic split, not crypto


class NotFound(Exception):
    """The model, version or alias does not exist; the message names which."""

    status = 404


class Gone(NotFound):
    """The version exists but will never answer again (stopped, or its deploy failed): a 410 saying so,
    never a 503 "retry shortly" that no retry could satisfy."""

    status = 410


_cache: dict[tuple[int, str, str], tuple[float, Route]] = {}
_lock = threading.Lock()


def invalidate(workspace_id: int, model_name: str) -> None:
    with _lock:
        for key in [k for k in _cache if k[0] == workspace_id and k[1] == model_name]:
            del _cache[key]


def announce(workspace_id: int, model_name: str) -> None:
    """After commit, make every process forget this model's routes (a promotion takes effect at once)."""
    invalidation.announce(f"route:{workspace_id}:{model_name}")


def _on_announcement(argument: str) -> None:
    if not argument:
        with _lock:
            _cache.clear()
        return
    workspace_id, _, model_name = argument.partition(":")
    invalidate(int(workspace_id), model_name)


invalidation.register("route", _on_announcement)


def _key(workspace_id: int, model_name: str, alias: str | None, number: int | None) -> tuple[int, str, str]:
    return workspace_id, model_name, f"v{number}" if number is not None else f"@{alias or 'production'}"


def peek(
    workspace_id: int, model_name: str, alias: str | None = None, number: int | None = None
) -> tuple[Route | None, bool]:
    """The cached route and whether it is still fresh, without touching the database or the
    executor. A stale route is still the best answer while a refresh runs (the gateway serves
    with it rather than making the call wait on the executor)."""
    with _lock:
        cached = _cache.get(_key(workspace_id, model_name, alias, number))
    if cached is None:
        return None, False
    return cached[1], cached[0] > time.monotonic()


def resolve(workspace_id: int, model_name: str, alias: str | None = None, number: int | None = None) -> Route:
    key = _key(workspace_id, model_name, alias, number)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
    if cached and cached[0] > now:
        return cached[1]
    route = _load(workspace_id, model_name, alias, number)
    with _lock:
        _cache[key] = (now + TTL, route)
    return route


def _load(workspace_id: int, model_name: str, alias: str | None, number: int | None) -> Route:
    model = Model.objects.filter(workspace_id=workspace_id, name=model_name).first()
    if model is None:
        raise NotFound(f"There is no model named '{model_name}' in this workspace.")
    if number is not None:
        version = ModelVersion.objects.filter(model=model, number=number).first()
        if version is None:
            raise NotFound(f"Model '{model_name}' has no version {number}.")
        if version.status in ("stopping", "stopped"):
            raise Gone(f"Version {number} of '{model_name}' is stopped. Call /v1/models/{model_name}/predict "
                       "(its production alias), or deploy a new version.")
        if version.status == "failed":
            raise Gone(f"Version {number} of '{model_name}' failed to deploy (at its {version.failed_step or 'deploy'} "
                       "step) and never served; see the version's page, fix it and deploy again.")
        versions = [(version, 100)]
        label = ""
    else:
        label = alias or "production"
        found = Alias.objects.filter(model=model, name=label).first()
        if found is None:
            raise NotFound(f"Model '{model_name}' has no '{label}' alias yet; deploy a version or promote one.")
        versions = [(r.version, r.weight) for r in found.routes.select_related("version")]
    targets = [Target(v.pk, v.number, w, _addresses(v), v.sandbox) for v, w in versions]
    return Route(workspace_id, model.pk, model.name, label, targets)


# version id -> (sandbox id, the addresses the executor last gave): kept across invalidations, for outages
_known: dict[int, tuple[str, list[str]]] = {}


def _addresses(version: ModelVersion) -> list[str]:
    if version.status != "ready" or not version.sandbox:
        _known.pop(version.pk, None)
        return []
    handle = SandboxHandle.model_validate(version.sandbox)
    try:
        addresses = get_executor().addresses(handle)
    except SandboxUnavailable:
        sandbox_id, last = _known.get(version.pk, ("", []))
        return list(last) if sandbox_id == handle.id else []
    except SandboxError:
        addresses = []
    with _lock:
        _known[version.pk] = (handle.id, list(addresses))
    return addresses


def replica_ended(sandbox: dict[str, Any] | None) -> tuple[bool, str | None]:
    """Whether a replica of this sandbox has just ended (the executor saw it and said why), and, when
    it hit a limit (memory, process, disk...), the executor's own words for it, as the version's log
    has them. (False, None) when every replica runs or the executor cannot say."""
    if not sandbox:
        return False, None
    try:
        status = get_executor().poll(SandboxHandle.model_validate(sandbox))
    except SandboxError:
        return False, None
    down = [r for r in status.replicas if r.state != State.RUNNING and r.reason]
    return bool(down), next((r.reason for r in down if r.limit), None)


def replica_restarts(sandbox: dict[str, Any] | None) -> list[tuple[int, int, str]]:
    """(replica index, restarts, why it last ended) for each replica that has been restarted, for the
    version's page: a memory limit, a failed health check... in the executor's own words."""
    if not sandbox:
        return []
    try:
        status = get_executor().poll(SandboxHandle.model_validate(sandbox))
    except SandboxError:
        return []
    return [(r.index, r.restarts, r.last_exit) for r in status.replicas if r.restarts and r.last_exit]
