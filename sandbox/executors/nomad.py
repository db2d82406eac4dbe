"""The Nomad executor: the same spec as a Nomad job, through python-nomad.

One Nomad namespace per workspace (``podium-<workspace>``, created on first
use), one job per sandbox (its id is the handle's id), one task group of
``replicas`` allocations, GPUs as ``device "nvidia/gpu"`` with constraints,
Nomad's own restart and reschedule policies, and Nomad-native service
registration (with a health check) for replica addresses. Code and artifact
directories reach clients as signed URLs served by Podium.

Nomad does not timestamp log lines: ``logs`` stamps each line when it reads it,
and yields a replica's stdout before its stderr.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nomad
import nomad.api.exceptions as nomad_errors
from nomad.api.base import Requester

from sandbox import nomad_jobs
from sandbox.errors import (
    ResourceUnavailable,
    SandboxError,
    SandboxNotFound,
    SandboxUnavailable,
    SpecNotSupported,
)
from sandbox.executors.base import Executor
from sandbox.signing import sign_url
from sandbox.spec import LimitName, LogLine, ReplicaStatus, SandboxHandle, SandboxSpec, SandboxStatus, State

TASK = "sandbox"
EVAL_WAIT_S = 5.0
MULTIERROR_HEAD = re.compile(r"\d+ errors? occurred:")


def _secret(name: str) -> str | None:
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name) or None


@dataclass(frozen=True)
class NomadConfig:
    """Where the cluster is and how Podium uses it (all from the environment)."""

    address: str = "http://127.0.0.1:4646"
    token: str | None = None
    settings: nomad_jobs.NomadSettings = field(default_factory=nomad_jobs.NomadSettings)
    artifact_url: str = "http://127.0.0.1:8000/sandbox-artifacts"
    artifact_root: Path = Path(__file__).resolve().parents[2] / "var"
    signing_key: bytes = b""
    timeout_s: int = 10

    @classmethod
    def from_env(cls) -> NomadConfig:
        env = os.environ
        settings = nomad_jobs.NomadSettings(
            region=env.get("PODIUM_NOMAD_REGION", "global"),
            datacenters=[d.strip() for d in env.get("PODIUM_NOMAD_DATACENTERS", "*").split(",") if d.strip()],
            namespace_prefix=env.get("PODIUM_NOMAD_NAMESPACE_PREFIX", "podium-"),
            mhz_per_core=int(env.get("PODIUM_NOMAD_MHZ_PER_CORE", "1000")),
            driver=env.get("PODIUM_NOMAD_DRIVER", "exec"),
            task_user=env.get("PODIUM_NOMAD_TASK_USER", "nobody"),
            uv=env.get("PODIUM_NOMAD_UV", "uv"),
            isolated_network=env.get("PODIUM_NOMAD_ISOLATED_NETWORK", "podium-isolated"),
        )
        podium_url = env.get("PODIUM_URL", "http://127.0.0.1:8000").rstrip("/")
        var_dir = env.get("PODIUM_VAR_DIR", str(Path(__file__).resolve().parents[2] / "var"))
        key = _secret("PODIUM_ARTIFACT_SIGNING_KEY") or _secret("PODIUM_SECRET_KEY") or _django_signing_key()
        return cls(
            address=env.get("NOMAD_ADDR", "http://127.0.0.1:4646"),
            token=_secret("NOMAD_TOKEN"),
            settings=settings,
            artifact_url=env.get("PODIUM_ARTIFACT_URL", f"{podium_url}/sandbox-artifacts"),
            artifact_root=Path(env.get("PODIUM_ARTIFACT_ROOT", _django_artifact_root() or var_dir)),
            signing_key=key.encode(),
        )


def _django_artifact_root() -> str:
    try:
        from django.conf import settings

        if settings.configured:
            return str(getattr(settings, "PODIUM_ARTIFACT_ROOT", "") or "")
    except ImportError:
        pass
    return ""


def _django_signing_key() -> str:
    """Inside Podium's processes, the key the web's artifact view checks (settings.PODIUM_ARTIFACT_SIGNING_KEY)."""
    try:
        from django.conf import settings

        if settings.configured:
            return str(getattr(settings, "PODIUM_ARTIFACT_SIGNING_KEY", "") or "")
    except ImportError:
        pass
    return ""


class _Service(Requester):
    """/v1/service/:name, which python-nomad does not wrap."""

    ENDPOINT = "service"


class _Checks(Requester):
    """/v1/client/allocation/:id/checks (Nomad-provider check results), which python-nomad does not wrap."""

    ENDPOINT = "client/allocation"


class NomadExecutor(Executor):
    """Sandboxes as Nomad jobs. Cannot enforce the pids limit (exec driver);
    ``poll`` lists such gaps in ``warnings``."""

    name = "nomad"
    supports_outbound_network = True  # the cluster's firewall keeps tasks off Podium's services

    def __init__(self, config: NomadConfig | None = None) -> None:
        self.config = config or NomadConfig.from_env()
        self.api = nomad.Nomad(address=self.config.address, token=self.config.token, timeout=self.config.timeout_s)
        self._services = _Service(**self.api.requester_settings)
        self._checks = _Checks(**self.api.requester_settings)

    # helpers

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except nomad_errors.URLNotFoundNomadException:
            raise
        except (nomad_errors.BaseNomadException, OSError) as exc:
            raise self._translate(exc, "request") from None

    def _translate(self, exc: Exception, what: str) -> SandboxError:
        """A failed call as Podium's error. Nomad answers a job that fails validation with
        HTTP 500 and its multierror text: that is a rejection of what Podium sent, not an outage."""
        response = getattr(exc, "nomad_resp", None)
        detail = (getattr(response, "text", None) or str(exc)).strip()
        status = getattr(response, "status_code", None)
        if status == 400 or (status == 500 and MULTIERROR_HEAD.match(detail)):
            return SandboxError(f"Nomad rejected the {what}: {_flatten_multierror(detail)}")
        return SandboxUnavailable(f"Nomad at {self.config.address} failed: {detail}")

    def _ns(self, handle: SandboxHandle) -> str:
        if handle.executor != self.name:
            raise SandboxError(f"sandbox {handle.id} belongs to the {handle.executor} executor, not {self.name}")
        return str(handle.state["namespace"])

    def _ensure_namespace(self, namespace: str, workspace: str) -> None:
        try:
            self._call(self.api.namespace.get_namespace, namespace)
        except nomad_errors.URLNotFoundNomadException:
            description = f"Podium workspace {workspace}"
            try:
                self.api.namespace.create_namespace({"Name": namespace, "Description": description})
            except nomad_errors.URLNotAuthorizedNomadException:
                raise SandboxUnavailable(
                    f"Nomad namespace {namespace} does not exist and Podium's token may not create it "
                    "(creating a namespace takes a management token; operator write is not enough). "
                    f'Create it ahead: nomad namespace apply -description "{description}" {namespace}'
                ) from None
            except (nomad_errors.BaseNomadException, OSError) as exc:
                raise self._translate(exc, "namespace") from None

    def artifact_urls(self, spec: SandboxSpec) -> dict[str, str]:
        """Signed URLs for what the job fetches (``code``, ``artifacts``, ``environment``: the archive its
        build job uploaded, when it has requirements) and, for a build, where it uploads (``upload``, signed
        for PUT, valid for the build's wall time and ten minutes more)."""
        urls = {}
        environment = nomad_jobs.environment_requirements(spec)
        archive = spec.environment if environment is not None and environment[0].strip() else None
        for key, path in (("code", spec.code_dir), ("artifacts", spec.artifact_dir), ("environment", archive)):
            if path is not None:
                urls[key] = self._sign(path)
        if spec.purpose == "build" and spec.output_dir is not None:
            ttl = int(spec.wall_time_s or 3600) + 600
            urls["upload"] = self._sign(spec.output_dir, ttl_s=ttl, method="PUT")
        return urls

    def _sign(self, path: Path, ttl_s: int = 3600, method: str = "GET") -> str:
        """The signed URL of ``<path>.tar.gz`` (a directory served as a tarball, or an environment's archive)."""
        try:
            relative = path.resolve().relative_to(self.config.artifact_root.resolve())
        except ValueError:
            raise SandboxError(f"{path} is outside the artifact store {self.config.artifact_root}") from None
        if not self.config.signing_key:
            raise SandboxError("PODIUM_ARTIFACT_SIGNING_KEY is not set; Nomad clients cannot fetch artifacts")
        return sign_url(self.config.artifact_url, f"{relative}.tar.gz", self.config.signing_key, ttl_s=ttl_s,
                        method=method)

    # the contract

    def start(self, spec: SandboxSpec) -> SandboxHandle:
        if spec.purpose == "build" and (spec.cache_dir is not None or spec.read_only_paths):
            raise SpecNotSupported("a Nomad build job has no shared uv cache and no host paths: uv, the "
                                   "interpreter and the index configuration come from the client")
        job_id = nomad_jobs.new_job_id(spec)
        job = nomad_jobs.build_job(spec, job_id, self.config.settings, self.artifact_urls(spec))
        namespace = job.namespace
        self._ensure_namespace(namespace, spec.workspace)
        try:
            result = self.api.jobs.register_job(nomad_jobs.render(job))
        except (nomad_errors.BaseNomadException, OSError) as exc:
            raise self._translate(exc, "job") from None
        handle = SandboxHandle(
            executor=self.name,
            id=job_id,
            state={
                "namespace": namespace,
                "purpose": spec.purpose,
                "warnings": nomad_jobs.unenforced(spec),
                "limits": spec.limits.model_dump(),
                "memory_mib": spec.resources.memory_mib,
            },
        )
        self._check_placement(handle, str(result.get("EvalID", "")), spec)
        return handle

    def _check_placement(self, handle: SandboxHandle, eval_id: str, spec: SandboxSpec) -> None:
        """Fail ``start`` (and remove the job) when Nomad cannot place it at all."""
        if not eval_id:
            return
        deadline = time.monotonic() + EVAL_WAIT_S
        while True:
            evaluation = self._call(
                self.api.evaluation.request, eval_id, method="get", params={"namespace": handle.state["namespace"]}
            ).json()
            if evaluation.get("Status") not in ("pending", None) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        failed = evaluation.get("FailedTGAllocs") or {}
        if not failed:
            return
        self._call(self.api.job.deregister_job, handle.id, namespace=handle.state["namespace"], purge=True)
        metrics = next(iter(failed.values()))
        raise ResourceUnavailable(_placement_message(spec, metrics))

    def _allocations(self, handle: SandboxHandle) -> list[dict[str, Any]]:
        """The newest allocation of each replica index."""
        namespace = self._ns(handle)
        try:
            allocs = self._call(self.api.job.get_allocations, handle.id, namespace=namespace)
        except nomad_errors.URLNotFoundNomadException:
            raise SandboxNotFound(f"no sandbox {handle.id!r} in Nomad namespace {namespace}") from None
        newest: dict[str, dict[str, Any]] = {}
        for alloc in allocs:
            index = alloc["Name"].rsplit("[", 1)[-1].rstrip("]")
            if index not in newest or alloc["CreateIndex"] > newest[index]["CreateIndex"]:
                newest[index] = alloc
        return [newest[key] for key in sorted(newest, key=int)]

    def _job(self, handle: SandboxHandle) -> dict[str, Any]:
        try:
            job: dict[str, Any] = self._call(self.api.job.get_job, handle.id, namespace=self._ns(handle))
        except nomad_errors.URLNotFoundNomadException:
            raise SandboxNotFound(f"no sandbox {handle.id!r} in Nomad namespace {self._ns(handle)}") from None
        return job

    def poll(self, handle: SandboxHandle) -> SandboxStatus:
        job = self._job(handle)
        allocs = self._allocations(handle)
        replicas = [self._replica(handle, alloc, stopping=bool(job.get("Stop"))) for alloc in allocs]
        if not replicas:
            state = State.STOPPED if job.get("Stop") else State.PENDING
            return SandboxStatus(id=handle.id, state=state, warnings=handle.state.get("warnings", []))
        return _aggregate(handle, replicas, bool(job.get("Stop")))

    def _replica(self, handle: SandboxHandle, alloc: dict[str, Any], stopping: bool) -> ReplicaStatus:
        index = int(alloc["Name"].rsplit("[", 1)[-1].rstrip("]"))
        task = (alloc.get("TaskStates") or {}).get(TASK) or {}
        restarts = int(task.get("Restarts", 0))
        client = alloc.get("ClientStatus")
        terminated = [e for e in task.get("Events") or [] if e.get("Type") == "Terminated"]
        last = terminated[-1] if terminated else {}
        exit_code = last.get("ExitCode") if last else None
        asked_to_stop = stopping or alloc.get("DesiredStatus") == "stop"
        if asked_to_stop and client in ("complete", "failed"):
            return ReplicaStatus(
                index=index, state=State.STOPPED, exit_code=exit_code, reason="stopped", restarts=restarts
            )
        if client == "running":
            return ReplicaStatus(index=index, state=State.RUNNING, restarts=restarts)
        if client == "pending":
            state = State.RESTARTING if restarts or terminated else State.PENDING
            return ReplicaStatus(index=index, state=state, restarts=restarts)
        if client == "complete" and not task.get("Failed") and (exit_code in (0, None)):
            return ReplicaStatus(index=index, state=State.EXITED, exit_code=0, restarts=restarts)
        reason, limit = _explain(last, handle.state)
        early = self._failed_before_start(alloc)
        if early is not None:
            reason, limit = early, None
        return ReplicaStatus(
            index=index, state=State.FAILED, exit_code=exit_code, reason=reason, limit=limit, restarts=restarts
        )

    def _failed_before_start(self, alloc: dict[str, Any]) -> str | None:
        """Nomad's own message when the sandbox task never ran: allocation setup, the
        driver or an artifact failed (``Setup Failure``, ``Driver Failure``, ...), or a
        prestart task failed (with the last lines of its output)."""
        states = alloc.get("TaskStates") or {}
        message = _start_failure(states.get(TASK) or {})
        if message:
            return f"the sandbox could not start: {message}"
        for name, state in states.items():
            if name == TASK or not state.get("Failed"):
                continue
            message = _start_failure(state)
            if message:
                return f"the {name} task could not start: {message}"
            ended = [e for e in state.get("Events") or [] if e.get("Type") == "Terminated"]
            code = ended[-1].get("ExitCode") if ended else None
            what = "building the environment" if name == "environment" else f"the {name} task"
            reason = f"{what} failed before the sandbox started" + (f" (exit code {code})" if code is not None else "")
            tail = self._log_tail(alloc["ID"], name)
            return f"{reason}:\n{tail}" if tail else reason
        return None

    def _log_tail(self, alloc_id: str, task: str, lines: int = 10) -> str:
        """The last lines a task wrote (stderr, else stdout); empty when Nomad has none."""
        for stream in ("stderr", "stdout"):
            try:
                text = self._call(self.api.client.stream_logs.stream, alloc_id, task, stream, plain=True)
            except (nomad_errors.URLNotFoundNomadException, SandboxError):
                continue
            kept = [line for line in str(text).splitlines() if line.strip()]
            if kept:
                return "\n".join(kept[-lines:])
        return ""

    def stop(self, handle: SandboxHandle, grace_s: float = 5.0) -> SandboxStatus:
        namespace = self._ns(handle)
        status = self.poll(handle)
        if status.done:
            return status
        try:
            self._call(self.api.job.deregister_job, handle.id, namespace=namespace)
        except nomad_errors.URLNotFoundNomadException:
            raise SandboxNotFound(f"no sandbox {handle.id!r} in Nomad namespace {namespace}") from None
        return self.wait(handle, timeout=grace_s + 30)

    def logs(self, handle: SandboxHandle, *, follow: bool = False, tail: int | None = None) -> Iterator[LogLine]:
        offsets: dict[tuple[str, str], int] = {}
        pending: dict[tuple[str, str], str] = {}
        backlog = self._read_new(handle, offsets, pending)
        if tail is not None:
            backlog = backlog[-tail:] if tail > 0 else []
        yield from backlog
        while follow:
            done = self.poll(handle).done
            batch = self._read_new(handle, offsets, pending)
            yield from batch
            if done and not batch:
                return
            time.sleep(0.25)

    def _read_new(
        self, handle: SandboxHandle, offsets: dict[tuple[str, str], int], pending: dict[tuple[str, str], str]
    ) -> list[LogLine]:
        out: list[LogLine] = []
        for alloc in self._allocations(handle):
            index = int(alloc["Name"].rsplit("[", 1)[-1].rstrip("]"))
            for stream in ("stdout", "stderr"):
                key = (alloc["ID"], stream)
                try:
                    text = self._call(
                        self.api.client.stream_logs.stream,
                        alloc["ID"],
                        TASK,
                        stream,
                        offset=offsets.get(key, 0),
                        plain=True,
                    )
                except (nomad_errors.URLNotFoundNomadException, SandboxError):
                    continue
                offsets[key] = offsets.get(key, 0) + len(text.encode())
                chunk = pending.pop(key, "") + text
                *complete, rest = chunk.split("\n")
                if rest:
                    pending[key] = rest
                now = datetime.now(UTC)
                out += [LogLine(time=now, stream=stream, replica=index, text=line) for line in complete]
        return out

    def addresses(self, handle: SandboxHandle) -> list[str]:
        """Replicas whose Nomad checks all pass. Nomad lists a service registration as
        soon as the task starts and keeps it while its check fails: the registration
        alone is no sign of readiness."""
        namespace = self._ns(handle)
        try:
            registrations = self._call(
                self._services.request, handle.id, method="get", params={"namespace": namespace}
            ).json()
        except nomad_errors.URLNotFoundNomadException:
            return []
        passing: dict[str, bool] = {}
        addresses = []
        for reg in registrations:
            alloc_id = str(reg.get("AllocID", ""))
            if alloc_id not in passing:
                passing[alloc_id] = self._checks_pass(alloc_id, namespace)
            if passing[alloc_id]:
                addresses.append(f"http://{reg['Address']}:{reg['Port']}")
        return addresses

    def _checks_pass(self, alloc_id: str, namespace: str) -> bool:
        """Every check of the allocation reports ``success`` (``null``: none has run yet)."""
        try:
            results = self._call(
                self._checks.request, alloc_id, "checks", method="get", params={"namespace": namespace}
            ).json()
        except nomad_errors.URLNotFoundNomadException:
            return False
        return bool(results) and all(result.get("Status") == "success" for result in results.values())

    def health(self) -> tuple[bool, str]:
        try:
            agent = nomad.Nomad(address=self.config.address, token=self.config.token, timeout=2).agent
            info = agent.get_agent()
        except (nomad_errors.BaseNomadException, OSError) as exc:
            return False, f"Nomad agent at {self.config.address} does not answer: {exc}"
        version = (info.get("member") or {}).get("Tags", {}).get("build", "unknown version")
        return True, f"Nomad agent at {self.config.address} answers ({version})"


def _aggregate(handle: SandboxHandle, replicas: list[ReplicaStatus], stopping: bool) -> SandboxStatus:
    states = [r.state for r in replicas]
    culprit = next((r for r in replicas if r.state == State.FAILED), None)
    if all(s.done for s in states):
        exited = all(s == State.EXITED for s in states)
        state = State.STOPPED if stopping else State.EXITED if exited else State.FAILED
    elif State.RESTARTING in states:
        state = State.RESTARTING
    elif State.PENDING in states:
        state = State.PENDING
    else:
        state = State.RUNNING
    exit_code = culprit.exit_code if culprit else (0 if state == State.EXITED else None)
    return SandboxStatus(
        id=handle.id,
        state=state,
        exit_code=exit_code,
        reason=culprit.reason if culprit else None,
        limit=culprit.limit if culprit else None,
        restarts=sum(r.restarts for r in replicas),
        replicas=replicas,
        warnings=handle.state.get("warnings", []),
    )


# Task events that mean the task never ran (Nomad's event types).
START_FAILURES = frozenset(
    {"Setup Failure", "Driver Failure", "Failed Artifact Download", "Failed Validation", "Task hook failed"}
)


def _start_failure(task: dict[str, Any]) -> str | None:
    """The message of the task's last start failure, unless the task ran after it."""
    for event in reversed(task.get("Events") or []):
        if event.get("Type") in ("Terminated", "Started"):
            return None
        if event.get("Type") in START_FAILURES:
            return str(
                event.get("DisplayMessage") or event.get("DriverError") or event.get("SetupError") or event["Type"]
            )
    return None


def _explain(event: dict[str, Any], state: dict[str, Any]) -> tuple[str, LimitName | None]:
    """Reason and limit from the task's last Terminated event."""
    code = event.get("ExitCode")
    details = event.get("Details") or {}
    limits = state.get("limits", {})
    if details.get("oom_killed") == "true":  # Nomad's only OOM signal: Details, as a string
        return f"memory limit: the sandbox used more than its {state.get('memory_mib')} MiB of memory", "memory"
    if code == nomad_jobs.TIME_LIMIT_EXIT and state.get("purpose") in ("oneshot", "build"):
        return f"time limit: the run took longer than {limits.get('wall_time_s') or 3600:g} s", "time"
    if code == 128 + 24:
        return f"cpu time limit: the sandbox used more than {limits.get('cpu_time_s')} s of CPU", "cpu time"
    if code == 128 + 25:
        return f"disk limit: a file grew past the {limits.get('disk_mib')} MiB disk limit", "disk"
    if event.get("Signal"):
        return f"killed by signal {event['Signal']}", None
    return (f"exited with code {code}" if code is not None else event.get("DisplayMessage") or "failed"), None


def _flatten_multierror(text: str) -> str:
    """Nomad's nested multierror text on one line: ``Task group sandbox validation failed:
    Delay cannot be less than 5s (got 1s)``; sibling errors are joined with ``; ``."""
    parts: list[str] = []
    for raw in text.splitlines():
        line = MULTIERROR_HEAD.sub("", raw.strip().removeprefix("* ")).strip()
        if not line:
            continue
        if parts and parts[-1].endswith(":"):
            parts[-1] = f"{parts[-1]} {line}"
        else:
            parts.append(line)
    return "; ".join(parts) or text.strip()


def _placement_message(spec: SandboxSpec, metrics: dict[str, Any]) -> str:
    asked = f"{spec.replicas} x " if spec.replicas > 1 else ""
    asked += f"{spec.resources.cpu:g} CPU, {spec.resources.memory_mib} MiB"
    if spec.resources.gpus:
        asked += f", {spec.resources.gpus} nvidia/gpu"
        if spec.resources.gpu is not None:
            asked += f" matching {spec.resources.gpu.model_dump(exclude_none=True)}"
    reasons = {**(metrics.get("ConstraintFiltered") or {}), **(metrics.get("DimensionExhausted") or {})}
    why = ", ".join(f"{k} on {v} node{'s' if v != 1 else ''}" for k, v in reasons.items()) or "no node fits"
    evaluated = metrics.get("NodesEvaluated", 0)
    return f"asked for {asked}; no Nomad client can run it ({evaluated} nodes evaluated: {why})"
