"""An in-process fake of the Nomad HTTP API endpoints Podium uses.

Checked against a real agent's answers (``../shared/nomad-api-samples``, loaded by
``test_fake_nomad_samples.py``): same paths, status codes, error texts and key
sets, the same event types with the same ``Details``, and Nomad's validation of
restart and reschedule policies (HTTP 500 with go-multierror's text). It acts as
server *and* client node: allocations run as local processes (like the raw_exec
driver) with the job's env interpolated (``${NOMAD_PORT_http}`` …), logs in
``alloc/logs/<task>.std{out,err}.0``, restart policies applied (modes ``fail`` and
``delay``), services registered with the Nomad provider while the main task runs,
and checks run when ``/v1/client/allocation/:id/checks`` is asked.

Networks as a client sees them: ``bridge`` and ``host`` work; ``cni/<name>`` works
for a CNI network the node has (``cni_networks``); ``none`` fails allocation setup
for exec-style tasks (``Setup Failure``), as on Nomad 2.0. What it does not do:
reschedule (Podium's jobs turn rescheduling off), deployments, isolation of any
kind (tasks run as the test's user), capabilities.

Endpoints: /v1/agent/self, /v1/namespace(s), /v1/jobs (GET, POST), /v1/job/:id
(GET, POST, DELETE), /v1/job/:id/allocations, /v1/allocation/:id,
/v1/evaluation/:id, /v1/client/fs/logs/:alloc_id,
/v1/client/allocation/:id/checks, /v1/service/:name.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import httpx

NS = 1_000_000_000
# A real agent's answers, which the fake is checked against (a copy of shared/ sits beside every checkout).
SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "nomad-api-samples"
DRIVERS = {"exec", "raw_exec", "docker", "java"}


class NomadError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def samples_dir() -> Path:
    """The captures folder; fails the calling test loudly when it is missing."""
    import pytest

    if not SAMPLES.is_dir():
        pytest.fail(
            f"The real Nomad agent's captures are missing: expected them in {SAMPLES.resolve()} "
            "(shared/nomad-api-samples beside this checkout). Without them the fake cannot be checked.",
            pytrace=False,
        )
    return SAMPLES


def parse_bool(value: str | None) -> bool:
    """Query booleans as Nomad reads them (Go's strconv.ParseBool)."""
    if value is None:
        return False
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise NomadError(400, f'strconv.ParseBool: parsing "{value}": invalid syntax')


def go_multierror(errors: list[str]) -> str:
    """A list of errors as hashicorp/go-multierror prints it."""
    head = "1 error occurred" if len(errors) == 1 else f"{len(errors)} errors occurred"
    return f"{head}:\n\t" + "\n\t".join(f"* {e}" for e in errors) + "\n\n"


def multierror(errors: list[str], status: int = 500) -> NomadError:
    """Nomad answers a job (or namespace) that fails validation with HTTP 500 and the multierror text."""
    return NomadError(status, go_multierror(errors))


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration.String() writes it (``1s``, ``1.5s``, ``200ms``, ``5m0s``)."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return sign + f"{ns / 1000:.3f}".rstrip("0").rstrip(".") + "µs"
    if ns < NS:
        return sign + f"{ns / 1_000_000:.6f}".rstrip("0").rstrip(".") + "ms"
    hours, rest = divmod(ns, 3600 * NS)
    minutes, rest = divmod(rest, 60 * NS)
    seconds = f"{rest / NS:.9f}".rstrip("0").rstrip(".")
    return sign + (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{seconds}s"


# What Nomad's API fills in for a task group's policies that a job leaves out (per job type).
RESTART_DEFAULTS = {
    "service": {"Attempts": 2, "Interval": 1800 * NS, "Delay": 15 * NS, "Mode": "fail", "RenderTemplates": False},
    "batch": {"Attempts": 3, "Interval": 86400 * NS, "Delay": 15 * NS, "Mode": "fail", "RenderTemplates": False},
}
RESCHEDULE_DEFAULTS = {
    "service": {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 30 * NS,
        "DelayFunction": "exponential",
        "MaxDelay": 3600 * NS,
        "Unlimited": True,
    },
    "batch": {
        "Attempts": 1,
        "Interval": 86400 * NS,
        "Delay": 5 * NS,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    },
}
RESTART_MIN_INTERVAL = 5 * NS
RESCHEDULE_MIN_DELAY = 5 * NS


def canonicalize(job: dict[str, Any]) -> dict[str, Any]:
    """The job as Nomad stores it: each group's restart and reschedule policies merged over the defaults."""
    kind = "batch" if job.get("Type") in ("batch", "sysbatch") else "service"
    groups = []
    for group in job.get("TaskGroups") or []:
        group = dict(group)
        group["RestartPolicy"] = {**RESTART_DEFAULTS[kind], **(group.get("RestartPolicy") or {})}
        group["ReschedulePolicy"] = {**RESCHEDULE_DEFAULTS[kind], **(group.get("ReschedulePolicy") or {})}
        groups.append(group)
    return {**job, "TaskGroups": groups}


def restart_policy_errors(policy: dict[str, Any]) -> list[str]:
    errors = []
    mode, attempts, interval, delay = policy["Mode"], policy["Attempts"], policy["Interval"], policy["Delay"]
    if mode not in ("delay", "fail"):
        errors.append(f'Unsupported restart mode: "{mode}"')
    if attempts == 0 and mode != "fail":
        errors.append(f'Restart policy "{mode}" with {attempts} attempts is ambiguous')
    if interval < RESTART_MIN_INTERVAL:
        errors.append(
            f"Interval can not be less than {go_duration(RESTART_MIN_INTERVAL)} (got {go_duration(interval)})"
        )
    if attempts * delay > interval:
        errors.append(
            f"Nomad can't restart the TaskGroup {attempts} times in an interval of {go_duration(interval)} "
            f"with a delay of {go_duration(delay)}"
        )
    return errors


def reschedule_policy_errors(policy: dict[str, Any]) -> list[str]:
    if not (policy["Attempts"] > 0 or policy["Unlimited"]):
        return []  # rescheduling is off: nothing else is checked
    errors = []
    delay, max_delay, function = policy["Delay"], policy["MaxDelay"], policy["DelayFunction"]
    if policy["Attempts"] > 0:
        if policy["Interval"] <= 0:
            errors.append("Interval must be a non zero value if Attempts > 0")
        if policy["Unlimited"]:
            errors.append("If Attempts >0, Unlimited cannot also be set to true")
    if delay < RESCHEDULE_MIN_DELAY:
        errors.append(f"Delay cannot be less than {go_duration(RESCHEDULE_MIN_DELAY)} (got {go_duration(delay)})")
    if function not in ("constant", "exponential", "fibonacci"):
        errors.append(f'Invalid delay function "{function}", must be one of ["constant" "exponential" "fibonacci"]')
    elif function != "constant":
        if max_delay < RESCHEDULE_MIN_DELAY:
            errors.append(
                f"Max Delay cannot be less than {go_duration(RESCHEDULE_MIN_DELAY)} (got {go_duration(max_delay)})"
            )
        if max_delay < delay:
            errors.append(f"Max Delay cannot be less than Delay {go_duration(delay)} (got {go_duration(max_delay)})")
    return errors


# The 24 fields every task event carries on Nomad (zero values unless the event sets them).
EVENT_FIELDS: dict[str, Any] = {
    "Details": {},
    "DiskLimit": 0,
    "DisplayMessage": "",
    "DownloadError": "",
    "DriverError": "",
    "DriverMessage": "",
    "ExitCode": 0,
    "FailedSibling": "",
    "FailsTask": False,
    "GenericSource": "",
    "KillError": "",
    "KillReason": "",
    "KillTimeout": 0,
    "Message": "",
    "RestartReason": "",
    "SetupError": "",
    "Signal": 0,
    "StartDelay": 0,
    "TaskSignal": "",
    "TaskSignalReason": "",
    "Time": 0,
    "Type": "",
    "ValidationError": "",
    "VaultError": "",
}
# Keys a job gets from Nomad when the submitted job leaves them out.
JOB_DEFAULTS: dict[str, Any] = {
    "Affinities": None,
    "AllAtOnce": False,
    "Constraints": None,
    "ConsulNamespace": "",
    "DispatchIdempotencyToken": "",
    "Dispatched": False,
    "Meta": None,
    "Multiregion": None,
    "NodePool": "default",
    "NomadTokenID": "",
    "ParameterizedJob": None,
    "ParentID": "",
    "Payload": None,
    "Periodic": None,
    "Priority": 50,
    "Region": "global",
    "Spreads": None,
    "Stable": False,
    "StatusDescription": "",
    "UI": None,
    "Update": {
        "AutoPromote": False,
        "AutoRevert": False,
        "Canary": 0,
        "HealthCheck": "",
        "HealthyDeadline": 0,
        "MaxParallel": 1,
        "MinHealthyTime": 0,
        "ProgressDeadline": 0,
        "Stagger": 30 * NS,
    },
    "VaultNamespace": "",
    "Version": 0,
    "VersionTag": None,
}
JOB_STUB_KEYS = [
    "CreateIndex",
    "Datacenters",
    "ID",
    "JobModifyIndex",
    "ModifyIndex",
    "Multiregion",
    "Name",
    "Namespace",
    "NodePool",
    "ParameterizedJob",
    "ParentID",
    "Periodic",
    "Priority",
    "Status",
    "StatusDescription",
    "Stop",
    "SubmitTime",
    "Type",
]
ALLOC_STUB_KEYS = [
    "ClientDescription",
    "ClientStatus",
    "CreateIndex",
    "CreateTime",
    "DeploymentStatus",
    "DesiredDescription",
    "DesiredStatus",
    "DesiredTransition",
    "EvalID",
    "FollowupEvalID",
    "ID",
    "JobID",
    "JobType",
    "JobVersion",
    "ModifyIndex",
    "ModifyTime",
    "Name",
    "Namespace",
    "NextAllocation",
    "NodeID",
    "NodeName",
    "PreemptedAllocations",
    "PreemptedByAllocation",
    "RescheduleTracker",
    "TaskGroup",
    "TaskStates",
]
CLIENT_DESCRIPTIONS = {
    "pending": "No tasks have started",
    "running": "Tasks are running",
    "complete": "All tasks have completed",
    "failed": "Failed tasks",
}
NETWORK_NONE_SETUP_ERROR = 'pre-run hook "network" failed: network already configured but not found in state'


def rfc3339(ns: int) -> str:
    """A time as Go's RFC3339Nano writes it (trailing zeros of the fraction dropped)."""
    seconds, fraction = divmod(ns, NS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def _metrics(nodes: int, filtered: dict[str, int] | None, count: int) -> dict[str, Any]:
    return {
        "AllocationTime": 60000,
        "ClassExhausted": None,
        "ClassFiltered": None,
        "CoalescedFailures": max(0, count - 1) if filtered else 0,
        "ConstraintFiltered": filtered,
        "DimensionExhausted": None,
        "NodePool": "default",
        "NodesAvailable": {"dc1": nodes},
        "NodesEvaluated": nodes,
        "NodesExhausted": 0,
        "NodesFiltered": nodes if filtered else 0,
        "NodesInPool": nodes,
        "QuotaExhausted": None,
        "ResourcesExhausted": None,
        "ScoreMetaData": None,
        "Scores": None,
    }


class FakeNomad:
    def __init__(
        self,
        workdir: Path,
        token: str | None = None,
        nodes: list[dict[str, Any]] | None = None,
        cni_networks: tuple[str, ...] = ("podium-isolated",),
    ) -> None:
        self.workdir = workdir
        self.token = token
        self.nodes = nodes or [{"ID": str(uuid.uuid4()), "Name": "client-1", "Datacenter": "dc1", "Devices": []}]
        self.cni_networks = set(cni_networks)
        self.lock = threading.RLock()
        self.index = 1
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocs: dict[str, dict[str, Any]] = {}
        self.evals: dict[str, dict[str, Any]] = {}
        self.services: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        # False: namespace writes are refused (403), as for a token without management rights.
        self.token_may_create_namespaces = True
        self.put_namespace("default", {"Description": "Default shared namespace"})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeNomad:
        self.thread.start()
        return self

    def close(self) -> None:
        with self.lock:
            allocs = list(self.allocs.values())
        for alloc in allocs:
            alloc["DesiredStatus"] = "stop"
        for proc in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.server.shutdown()
        self.server.server_close()

    def _next_index(self) -> int:
        with self.lock:
            self.index += 1
            return self.index

    # -- HTTP plumbing -------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((method, url.path))
                try:
                    if fake.token and self.headers.get("X-Nomad-Token") != fake.token:
                        raise NomadError(403, "Permission denied")
                    result = fake.route(method, unquote(url.path), query, body)
                    status, payload = 200, result
                except NomadError as exc:
                    status, payload = exc.status, exc.text
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                content_type = "text/plain" if isinstance(payload, str) else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("X-Nomad-Index", str(fake.index))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        ns = query.get("namespace", "default")
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/v1/agent/self", lambda: self.agent_self()),
            ("GET", r"/v1/namespaces", lambda: list(self.namespaces.values())),
            ("GET", r"/v1/namespace/(?P<name>[^/]+)", lambda name: self.get_namespace(name)),
            ("POST", r"/v1/namespace(?:/(?P<name>[^/]+))?", lambda name=None: self.put_namespace(name, body)),
            ("PUT", r"/v1/namespace(?:/(?P<name>[^/]+))?", lambda name=None: self.put_namespace(name, body)),
            ("GET", r"/v1/jobs", lambda: self.list_jobs(ns)),
            ("POST", r"/v1/jobs", lambda: self.register(body)),
            ("PUT", r"/v1/jobs", lambda: self.register(body)),
            ("POST", r"/v1/job/(?P<job_id>[^/]+)", lambda job_id: self.register(body, job_id)),
            ("GET", r"/v1/job/(?P<job_id>[^/]+)", lambda job_id: self.get_job(ns, job_id)),
            (
                "DELETE",
                r"/v1/job/(?P<job_id>[^/]+)",
                lambda job_id: self.deregister(ns, job_id, parse_bool(query.get("purge"))),
            ),
            ("GET", r"/v1/job/(?P<job_id>[^/]+)/allocations", lambda job_id: self.job_allocs(ns, job_id)),
            ("GET", r"/v1/allocation/(?P<alloc_id>[^/]+)", lambda alloc_id: self.get_alloc(alloc_id)),
            ("GET", r"/v1/evaluation/(?P<eval_id>[^/]+)", lambda eval_id: self.get_eval(eval_id)),
            ("GET", r"/v1/client/fs/logs/(?P<alloc_id>[^/]+)", lambda alloc_id: self.read_logs(alloc_id, query)),
            ("GET", r"/v1/service/(?P<name>[^/]+)", lambda name: list(self.services.get((ns, name), []))),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                with self.lock:
                    return handler(**{k: v for k, v in match.groupdict().items() if v is not None})
        match = re.fullmatch(r"/v1/client/allocation/(?P<alloc_id>[^/]+)/checks", path)
        if method == "GET" and match:
            return self.alloc_checks(match["alloc_id"])  # probes without holding the lock
        raise NomadError(404, "Invalid URL")

    # -- agent and namespaces --------------------------------------------------------

    def agent_self(self) -> dict[str, Any]:
        tags = {"build": "2.0.6-fake", "dc": "dc1", "region": "global", "role": "nomad", "vsn": "1"}
        member = {
            "Addr": "127.0.0.1",
            "DelegateCur": 4,
            "DelegateMax": 5,
            "DelegateMin": 2,
            "Name": "fake-nomad.global",
            "Port": 4648,
            "ProtocolCur": 2,
            "ProtocolMax": 5,
            "ProtocolMin": 1,
            "Status": "alive",
            "Tags": tags,
        }
        config = {"Version": {"Version": "2.0.6", "VersionPrerelease": "fake"}, "Region": "global"}
        return {"config": config, "member": member, "stats": {"nomad": {"leader": "true"}}}

    def get_namespace(self, name: str) -> dict[str, Any]:
        if name not in self.namespaces:
            raise NomadError(404, "Namespace not found")
        return self.namespaces[name]

    def put_namespace(self, name: str | None, body: Any) -> str:
        if not self.token_may_create_namespaces:
            raise NomadError(403, "Permission denied")
        name = name or (body or {}).get("Name")
        if not name or not re.fullmatch(r"[a-zA-Z0-9-]{1,128}", name):
            raise multierror([f"invalid name {name!r}. Must match regex ^[a-zA-Z0-9-]{{1,128}}$"])
        index = self._next_index()
        self.namespaces[name] = {
            "Capabilities": None,
            "ConsulConfiguration": None,
            "CreateIndex": index,
            "Description": (body or {}).get("Description", ""),
            "Hash": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
            "Meta": None,
            "ModifyIndex": index,
            "Name": name,
            "NodePoolConfiguration": None,
            "OptionalExtraClaims": None,
            "Quota": "",
            "RequiredExtraClaims": None,
            "VaultConfiguration": None,
        }
        return ""

    # -- jobs ---------------------------------------------------------------------------

    @staticmethod
    def validate(job: dict[str, Any]) -> None:
        """Nomad's own checks of a (canonical) job, with its texts: a group's errors are
        one multierror inside the job's, a task's one more level down."""
        errors = []
        if not job.get("ID"):
            errors.append("Missing job ID")
        elif " " in job["ID"]:
            errors.append("Job ID contains a space")
        if job.get("Type") not in ("service", "batch", "system", "sysbatch"):
            errors.append(f'Invalid job type: "{job.get("Type")}"')
        if not job.get("Datacenters"):
            errors.append("Missing job datacenters")
        groups = job.get("TaskGroups") or []
        if not groups:
            errors.append("Missing job task groups")
        for group in groups:
            problems = FakeNomad._group_errors(group)
            if problems:
                errors.append(f"Task group {group.get('Name')} validation failed: {go_multierror(problems)}")
        if errors:
            raise multierror(errors)

    @staticmethod
    def _group_errors(group: dict[str, Any]) -> list[str]:
        problems = []
        if group.get("Count", 1) < 0:
            problems.append("Task group count can't be negative")
        problems += restart_policy_errors(group["RestartPolicy"])
        problems += reschedule_policy_errors(group["ReschedulePolicy"])
        labels = {p.get("Label") for n in group.get("Networks") or [] for p in n.get("DynamicPorts") or []}
        for service in group.get("Services") or []:
            if service.get("PortLabel") and service["PortLabel"] not in labels:
                problems.append(f"Service {service.get('Name')} uses undefined port label {service['PortLabel']!r}")
        if not group.get("Tasks"):
            problems.append("Missing tasks for task group")
        for task in group.get("Tasks") or []:
            task_problems = []
            if not task.get("Driver"):
                task_problems.append("Missing task driver")
            resources = task.get("Resources") or {}
            if resources.get("MemoryMB", 300) < 10:
                task_problems.append(f"minimum MemoryMB value is 10; got {resources['MemoryMB']}")
            if resources.get("CPU", 100) < 1:
                task_problems.append(f"minimum CPU value is 1; got {resources['CPU']}")
            if task_problems:
                problems.append(f"Task {task.get('Name')} validation failed: {go_multierror(task_problems)}")
        return problems

    def register(self, body: Any, path_id: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict) or "Job" not in body:
            raise NomadError(400, "Job must be specified")
        job = canonicalize(dict(body["Job"]))
        self.validate(job)
        if path_id is not None and path_id != job["ID"]:
            raise NomadError(400, "Job ID does not match name")
        ns = job.get("Namespace") or "default"
        if ns not in self.namespaces:
            raise NomadError(400, f'job "{job["ID"]}" is in nonexistent namespace "{ns}"')
        index = self._next_index()
        job = {**JOB_DEFAULTS, "Name": job["ID"], **job}
        job.update(
            Namespace=ns,
            Status="pending",
            Stop=False,
            CreateIndex=index,
            ModifyIndex=index,
            JobModifyIndex=index,
            SubmitTime=time.time_ns(),
        )
        self.jobs[(ns, job["ID"])] = job
        evaluation = self.schedule(job)
        return {
            "EvalCreateIndex": index,
            "EvalID": evaluation["ID"],
            "Index": index,
            "JobModifyIndex": index,
            "KnownLeader": False,
            "LastContact": 0,
            "NextToken": "",
            "Warnings": self._warnings(job),
        }

    @staticmethod
    def _warnings(job: dict[str, Any]) -> str:
        warnings = [
            f'group "{group["Name"]}" defines services, but neither the group nor any of its tasks have '
            "shutdown_delay set"
            for group in job["TaskGroups"]
            if group.get("Services")
            and not group.get("ShutdownDelay")
            and not any(task.get("ShutdownDelay") for task in group["Tasks"])
        ]
        if not warnings:
            return ""
        head = "1 warning" if len(warnings) == 1 else f"{len(warnings)} warnings"
        return f"{head}:\n\n" + "\n".join(f"* {w}" for w in warnings)

    def list_jobs(self, ns: str) -> list[dict[str, Any]]:
        stubs = []
        for (job_ns, _), job in sorted(self.jobs.items()):
            if ns not in ("*", job_ns):
                continue
            stub = {key: job.get(key) for key in JOB_STUB_KEYS}
            stub["ParameterizedJob"] = bool(job.get("ParameterizedJob"))
            stub["Periodic"] = bool(job.get("Periodic"))
            stub["JobSummary"] = self._summary(job)
            stubs.append(stub)
        return stubs

    def _summary(self, job: dict[str, Any]) -> dict[str, Any]:
        counts = {
            group["Name"]: dict.fromkeys(("Complete", "Failed", "Lost", "Queued", "Running", "Starting", "Unknown"), 0)
            for group in job["TaskGroups"]
        }
        names = {"complete": "Complete", "failed": "Failed", "running": "Running", "pending": "Starting"}
        for alloc in self._allocs_of(job["Namespace"], job["ID"]):
            counts[alloc["TaskGroup"]][names[alloc["ClientStatus"]]] += 1
        return {
            "Children": {"Dead": 0, "Pending": 0, "Running": 0},
            "CreateIndex": job["CreateIndex"],
            "JobID": job["ID"],
            "ModifyIndex": self.index,
            "Namespace": job["Namespace"],
            "Summary": counts,
        }

    def _device_fits(self, task: dict[str, Any]) -> bool:
        asked = [d for d in (task.get("Resources") or {}).get("Devices") or [] if d.get("Name") == "nvidia/gpu"]
        if not asked:
            return True
        need = sum(d.get("Count", 1) for d in asked)
        for node in self.nodes:
            gpus = [d for d in node.get("Devices", []) if d.get("Vendor") == "nvidia" and d.get("Type") == "gpu"]
            if sum(len(d.get("Instances", [])) for d in gpus) >= need:
                return True
        return False

    def _unplaceable(self, group: dict[str, Any]) -> str | None:
        """The constraint no node meets (Nomad's filter name), or None when the group fits.
        A CNI network the node has not fingerprinted filters it ("missing network" is inferred)."""
        if any(task.get("Driver") not in DRIVERS for task in group["Tasks"]):
            return "missing drivers"
        for network in group.get("Networks") or []:
            mode = network.get("Mode") or "host"
            if mode.startswith("cni/") and mode[4:] not in self.cni_networks:
                return "missing network"
        if not all(self._device_fits(task) for task in group["Tasks"]):
            return "missing devices"
        return None

    def schedule(self, job: dict[str, Any]) -> dict[str, Any]:
        eval_id = str(uuid.uuid4())
        failed: dict[str, Any] = {}
        for group in job["TaskGroups"]:
            missing = self._unplaceable(group)
            if missing:
                failed[group["Name"]] = _metrics(len(self.nodes), {missing: len(self.nodes)}, group.get("Count", 1))
        now, index = time.time_ns(), self._next_index()
        evaluation = {
            "BlockedEval": str(uuid.uuid4()) if failed else "",
            "CreateIndex": index,
            "CreateTime": now,
            "DeploymentID": str(uuid.uuid4()) if job["Type"] == "service" else "",
            "FailedTGAllocs": failed or None,
            "ID": eval_id,
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "ModifyIndex": index,
            "ModifyTime": now,
            "Namespace": job["Namespace"],
            "PlanAnnotations": {
                "DesiredTGUpdates": {
                    group["Name"]: {
                        **dict.fromkeys(
                            [
                                "Canary",
                                "DestructiveUpdate",
                                "Disconnect",
                                "Ignore",
                                "InPlaceUpdate",
                                "Migrate",
                                "Preemptions",
                                "Reconnect",
                                "RescheduleLater",
                                "RescheduleNow",
                                "Stop",
                            ],
                            0,
                        ),
                        "Place": group.get("Count", 1),
                    }
                    for group in job["TaskGroups"]
                },
                "PreemptedAllocs": None,
            },
            "Priority": job["Priority"],
            "QueuedAllocations": {
                g["Name"]: g.get("Count", 1) if g["Name"] in failed else 0 for g in job["TaskGroups"]
            },
            "SnapshotIndex": job["JobModifyIndex"],
            "Status": "complete",
            "TriggeredBy": "job-register",
            "Type": job["Type"],
        }
        self.evals[eval_id] = evaluation
        job["Status"] = "running"  # also when nothing could be placed, as Nomad reports it
        if failed:
            return evaluation
        for group in job["TaskGroups"]:
            for index in range(group.get("Count", 1)):
                self._place(job, group, index, eval_id, evaluation["DeploymentID"])
        return evaluation

    def _place(self, job: dict[str, Any], group: dict[str, Any], index: int, eval_id: str, deployment: str) -> None:
        alloc_id = str(uuid.uuid4())
        now = self._next_index()
        tasks = group["Tasks"]
        resources = {
            t["Name"]: {
                "CPU": (t.get("Resources") or {}).get("CPU", 100),
                "Cores": 0,
                "Devices": None,
                "DiskMB": 0,
                "IOPS": 0,
                "MemoryMB": (t.get("Resources") or {}).get("MemoryMB", 300),
                "MemoryMaxMB": 0,
                "NUMA": None,
                "Networks": None,
                "SecretsMB": 0,
            }
            for t in tasks
        }
        disk = (group.get("EphemeralDisk") or {}).get("SizeMB", 300)
        shared = {**next(iter(resources.values())), "CPU": 0, "MemoryMB": 0, "DiskMB": disk, "Networks": []}
        alloc = {
            "AllocModifyIndex": now,
            "AllocatedResources": {
                "Shared": {"DiskMB": disk, "Networks": [], "Ports": []},
                "TaskLifecycles": {t["Name"]: t.get("Lifecycle") for t in tasks},
                "Tasks": {
                    name: {
                        "Cpu": {"CpuShares": r["CPU"], "ReservedCores": None},
                        "Devices": None,
                        "Memory": {"MemoryMB": r["MemoryMB"], "MemoryMaxMB": 0},
                        "Networks": None,
                    }
                    for name, r in resources.items()
                },
            },
            "ClientDescription": CLIENT_DESCRIPTIONS["pending"],
            "ClientStatus": "pending",
            "CreateIndex": now,
            "CreateTime": time.time_ns(),
            "DeploymentID": deployment,
            "DesiredStatus": "run",
            "EvalID": eval_id,
            "ID": alloc_id,
            "Job": job,
            "JobID": job["ID"],
            "Metrics": _metrics(len(self.nodes), None, 1),
            "ModifyIndex": now,
            "ModifyTime": time.time_ns(),
            "Name": f"{job['ID']}.{group['Name']}[{index}]",
            "Namespace": job["Namespace"],
            "NetworkStatus": {"Address": "", "AddressIPv6": "", "DNS": None, "InterfaceName": ""},
            "NodeID": self.nodes[0]["ID"],
            "NodeName": self.nodes[0]["Name"],
            "Resources": {**shared, "CPU": sum(r["CPU"] for r in resources.values())},
            "SharedResources": shared,
            "SigningKeyID": str(uuid.uuid4()),
            "TaskGroup": group["Name"],
            "TaskResources": resources,
            "TaskStates": {
                t["Name"]: {
                    "Events": [],
                    "Failed": False,
                    "FinishedAt": None,
                    "LastRestart": None,
                    "Paused": "",
                    "Restarts": 0,
                    "StartedAt": None,
                    "State": "pending",
                }
                for t in tasks
            },
        }
        if not deployment:
            del alloc["DeploymentID"]  # omitted when empty, as Nomad's JSON does (batch jobs have none)
        self.allocs[alloc_id] = alloc
        threading.Thread(target=self._run_alloc, args=(job, group, alloc, index), daemon=True).start()

    def get_job(self, ns: str, job_id: str) -> dict[str, Any]:
        job = self.jobs.get((ns, job_id))
        if job is None:
            raise NomadError(404, "job not found")
        return job

    def deregister(self, ns: str, job_id: str, purge: bool) -> dict[str, Any]:
        job = self.get_job(ns, job_id)
        job["Stop"] = True
        for alloc in self._allocs_of(ns, job_id):
            alloc["DesiredStatus"] = "stop"  # the client kills the tasks (Killing, then Terminated and Killed)
            alloc["DesiredDescription"] = "alloc not needed due to job update"
        if purge:
            del self.jobs[(ns, job_id)]
        eval_id = str(uuid.uuid4())
        self.evals[eval_id] = {
            "ID": eval_id,
            "Namespace": ns,
            "JobID": job_id,
            "Status": "complete",
            "TriggeredBy": "job-deregister",
            "FailedTGAllocs": None,
        }
        return {"EvalID": eval_id, "EvalCreateIndex": self._next_index(), "JobModifyIndex": self.index}

    def _allocs_of(self, ns: str, job_id: str) -> list[dict[str, Any]]:
        return [a for a in self.allocs.values() if a["JobID"] == job_id and a["Namespace"] == ns]

    def job_allocs(self, ns: str, job_id: str) -> list[dict[str, Any]]:
        """Allocation stubs; a job that does not exist has none (200 ``[]``, not 404)."""
        stubs = []
        for alloc in self._allocs_of(ns, job_id):
            stub = {key: alloc.get(key) for key in ALLOC_STUB_KEYS}
            stub.update(
                DeploymentStatus=None,
                DesiredDescription=alloc.get("DesiredDescription", ""),
                DesiredTransition=dict.fromkeys(
                    ("ForceReschedule", "Migrate", "MigrateDisablePlacement", "NoShutdownDelay", "Reschedule")
                ),
                FollowupEvalID="",
                JobType=alloc["Job"]["Type"],
                JobVersion=alloc["Job"]["Version"],
                NextAllocation="",
                PreemptedAllocations=None,
                PreemptedByAllocation="",
                RescheduleTracker=None,
            )
            stubs.append(stub)
        return stubs

    def get_alloc(self, alloc_id: str) -> dict[str, Any]:
        if alloc_id not in self.allocs:
            raise NomadError(404, "alloc not found")
        return self.allocs[alloc_id]

    def get_eval(self, eval_id: str) -> dict[str, Any]:
        if eval_id not in self.evals:
            raise NomadError(404, "eval not found")
        return self.evals[eval_id]

    def read_logs(self, alloc_id: str, query: dict[str, str]) -> Any:
        if alloc_id not in self.allocs:
            raise NomadError(404, f'Unknown allocation "{alloc_id}"')
        kind = query.get("type")
        if kind not in ("stdout", "stderr"):
            raise NomadError(400, "must provide logs type")
        task = query.get("task")
        if not task:
            raise NomadError(400, "must provide task name")
        states = self.allocs[alloc_id]["TaskStates"]
        if task not in states:
            raise NomadError(400, f'unknown task name "{task}"')  # status inferred; the text is Nomad's
        path = self.workdir / alloc_id / "alloc" / "logs" / f"{task}.{kind}.0"
        if states[task]["StartedAt"] is None and not path.exists():
            raise NomadError(404, f'task "{task}" not started yet. No logs available')
        data = path.read_bytes() if path.exists() else b""
        offset = int(query.get("offset", 0))
        chunk = data[offset:] if query.get("origin", "start") == "start" else data[max(0, len(data) - offset) :]
        if parse_bool(query.get("plain")):
            return chunk.decode(errors="replace")
        return {"Data": base64.b64encode(chunk).decode(), "File": path.name, "Offset": offset + len(chunk)}

    def alloc_checks(self, alloc_id: str) -> dict[str, Any] | None:
        """Nomad-provider check results of a live allocation, keyed by check id; ``null``
        when it has no registered service (not running yet, dead, or no checks)."""
        with self.lock:
            if alloc_id not in self.allocs:
                raise NomadError(404, "alloc not found")
            alloc = self.allocs[alloc_id]
            registered = [reg for regs in self.services.values() for reg in regs if reg["AllocID"] == alloc_id]
            group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        if not registered:
            return None
        results: dict[str, Any] = {}
        for service in group.get("Services") or []:
            reg = next((r for r in registered if r["ServiceName"] == service["Name"]), None)
            if reg is None:
                continue
            for check in service.get("Checks") or []:
                check_id = hashlib.sha256(f"{alloc_id}/{service['Name']}/{check['Name']}".encode()).hexdigest()
                result = {
                    "Check": check["Name"],
                    "Group": alloc["Name"],
                    "ID": check_id,
                    "Mode": "readiness" if check.get("OnUpdate") == "ignore" else "healthiness",
                    "Service": service["Name"],
                    "Timestamp": int(time.time()),
                    **_probe(check, reg["Address"], reg["Port"]),
                }
                results[check_id] = result
        return results or None

    # -- the client node -----------------------------------------------------------------

    def _event(self, alloc: dict[str, Any], task: str, kind: str, display: str, **fields: Any) -> None:
        """Append a task event with all of Nomad's fields (``Details`` holds strings)."""
        with self.lock:
            event = {**EVENT_FIELDS, "Type": kind, "Time": time.time_ns(), "DisplayMessage": display, **fields}
            alloc["TaskStates"][task]["Events"].append(event)
            alloc["ModifyIndex"] = self._next_index()
            alloc["ModifyTime"] = time.time_ns()

    def _set(self, alloc: dict[str, Any], task: str | None = None, **fields: Any) -> None:
        with self.lock:
            target = alloc["TaskStates"][task] if task else alloc
            if task and fields.get("State") == "dead" and target["FinishedAt"] is None:
                fields.setdefault("FinishedAt", rfc3339(time.time_ns()))
            if not task and "ClientStatus" in fields:
                fields["ClientDescription"] = CLIENT_DESCRIPTIONS[fields["ClientStatus"]]
            target.update(fields)
            alloc["ModifyIndex"] = self._next_index()
            alloc["ModifyTime"] = time.time_ns()

    def _terminated(self, alloc: dict[str, Any], task: str, code: int) -> int:
        signal_no = -code if code < 0 else 0
        exit_code = code if code >= 0 else 128 + signal_no
        display = f"Exit Code: {exit_code}" + (f", Signal: {signal_no}" if signal_no else "")
        details = {"exit_code": str(exit_code), "oom_killed": "false", "signal": str(signal_no)}
        self._event(alloc, task, "Terminated", display, Details=details, ExitCode=exit_code, Signal=signal_no)
        return exit_code

    def _killing(self, alloc: dict[str, Any], task: dict[str, Any]) -> None:
        timeout = task.get("KillTimeout", 5 * NS)
        self._event(
            alloc,
            task["Name"],
            "Killing",
            f"Sent interrupt. Waiting {go_duration(timeout)} before force killing",
            Details={"kill_timeout": go_duration(timeout)},
            KillTimeout=timeout,
        )

    def _sibling_failed(self, alloc: dict[str, Any], task: dict[str, Any], sibling: str, running: bool) -> None:
        self._event(
            alloc,
            task["Name"],
            "Sibling Task Failed",
            f'Task\'s sibling "{sibling}" failed',
            Details={"failed_sibling": sibling},
            FailedSibling=sibling,
        )
        if running:
            self._killing(alloc, task)

    def _interpolate(self, value: str, env: dict[str, str]) -> str:
        return re.sub(r"\$\{(NOMAD_[A-Za-z0-9_]+)\}", lambda m: env.get(m.group(1), m.group(0)), value)

    def _fetch_artifacts(self, task: dict[str, Any], task_dir: Path) -> None:
        for artifact in task.get("Artifacts") or []:
            dest = task_dir / artifact.get("RelativeDest", "local/")
            dest.mkdir(parents=True, exist_ok=True)
            response = httpx.get(artifact["GetterSource"], timeout=30)
            response.raise_for_status()
            if urlparse(artifact["GetterSource"]).path.endswith(".tar.gz"):
                with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
                    archive.extractall(dest, filter="data")
            else:
                (dest / Path(urlparse(artifact["GetterSource"]).path).name).write_bytes(response.content)

    def _finish(self, job: dict[str, Any], alloc: dict[str, Any], status: str) -> None:
        with self.lock:
            self._set(alloc, ClientStatus=status)
            if all(a["ClientStatus"] in ("complete", "failed") for a in self._allocs_of(job["Namespace"], job["ID"])):
                job["Status"] = "dead"

    def _run_alloc(self, job: dict[str, Any], group: dict[str, Any], alloc: dict[str, Any], index: int) -> None:
        alloc_dir = self.workdir / alloc["ID"]
        (alloc_dir / "alloc" / "logs").mkdir(parents=True)
        tasks = group["Tasks"]
        for task in tasks:
            self._event(alloc, task["Name"], "Received", "Task received by client")
        modes = [network.get("Mode") or "host" for network in group.get("Networks") or []]
        if "none" in modes:
            self._setup_failure(alloc, tasks, f"failed to setup alloc: {NETWORK_NONE_SETUP_ERROR}")
            self._finish(job, alloc, "failed")
            return
        env = {
            "NOMAD_ALLOC_DIR": str(alloc_dir / "alloc"),
            "NOMAD_ALLOC_ID": alloc["ID"],
            "NOMAD_ALLOC_INDEX": str(index),
            "NOMAD_JOB_ID": job["ID"],
            "NOMAD_NAMESPACE": job["Namespace"],
            "NOMAD_GROUP_NAME": group["Name"],
        }
        for network in group.get("Networks") or []:
            for port in network.get("DynamicPorts") or []:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    env[f"NOMAD_PORT_{port['Label']}"] = str(probe.getsockname()[1])
        prestart = [t for t in tasks if (t.get("Lifecycle") or {}).get("Hook") == "prestart"]
        main = [t for t in tasks if t not in prestart]
        for task in prestart:
            if self._run_task(job, group, alloc, task, env, alloc_dir, prestart=True) != 0:
                stopped = alloc["DesiredStatus"] == "stop"
                for sibling in main:
                    if not stopped:
                        self._sibling_failed(alloc, sibling, task["Name"], running=True)
                    self._set(alloc, sibling["Name"], State="dead")
                self._finish(job, alloc, "complete" if stopped else "failed")
                return
        outcome = 0
        for task in main:
            outcome = self._run_task(job, group, alloc, task, env, alloc_dir, prestart=False)
        stopped = alloc["DesiredStatus"] == "stop"
        self._finish(job, alloc, "complete" if stopped or outcome == 0 else "failed")

    def _setup_failure(self, alloc: dict[str, Any], tasks: list[dict[str, Any]], message: str) -> None:
        """Allocation setup failed (a pre-run hook): every task fails without starting, and
        the others are told that the main task failed."""
        details = {"fails_task": "true", "kill_reason": "Failed Restoring Task"}
        for task in tasks:
            self._event(
                alloc,
                task["Name"],
                "Setup Failure",
                message,
                Details=details,
                FailsTask=True,
                KillReason=details["kill_reason"],
            )
        leader = next((t for t in tasks if not (t.get("Lifecycle") or {}).get("Hook")), tasks[-1])
        for task in tasks:
            if task is not leader:
                self._sibling_failed(alloc, task, leader["Name"], running=False)
        for task in tasks:
            self._set(alloc, task["Name"], State="dead", Failed=True)

    def _run_task(
        self,
        job: dict[str, Any],
        group: dict[str, Any],
        alloc: dict[str, Any],
        task: dict[str, Any],
        base_env: dict[str, str],
        alloc_dir: Path,
        prestart: bool,
    ) -> int:
        name = task["Name"]
        task_dir = alloc_dir / name
        (task_dir / "local" / "tmp").mkdir(parents=True)
        (task_dir / "secrets").mkdir()
        env = {
            **base_env,
            "NOMAD_TASK_NAME": name,
            "NOMAD_TASK_DIR": str(task_dir / "local"),
            "NOMAD_SECRETS_DIR": str(task_dir / "secrets"),
        }
        setup = "Building Task Directory"
        self._event(alloc, name, "Task Setup", setup, Details={"message": setup}, Message=setup)
        if task.get("Artifacts"):
            self._event(alloc, name, "Downloading Artifacts", "Client is downloading artifacts")
        try:
            self._fetch_artifacts(task, task_dir)
        except (httpx.HTTPError, tarfile.TarError, OSError) as exc:
            error = f"failed to download artifact: {exc}"
            self._event(
                alloc,
                name,
                "Failed Artifact Download",
                error,
                Details={"download_error": error, "fails_task": "true"},
                DownloadError=error,
                FailsTask=True,
            )
            self._set(alloc, name, State="dead", Failed=True)
            return 1
        task_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        task_env.update({k: self._interpolate(v, env) for k, v in (task.get("Env") or {}).items()})
        config = task.get("Config") or {}
        argv = [self._interpolate(a, env) for a in [config["command"], *config.get("args", [])]]
        tracker = _RestartTracker(group["RestartPolicy"], batch=job["Type"] == "batch", prestart=prestart)
        restarts = 0
        while True:
            logs = alloc_dir / "alloc" / "logs"
            with open(logs / f"{name}.stdout.0", "ab") as out, open(logs / f"{name}.stderr.0", "ab") as err:
                proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=task_env,
                    cwd=task_dir,
                    start_new_session=True,
                )
            self.procs[alloc["ID"]] = proc
            self._event(alloc, name, "Started", "Task started by client")
            self._set(alloc, name, State="running", StartedAt=rfc3339(time.time_ns()), FinishedAt=None)
            if alloc["ClientStatus"] == "pending" and not prestart:
                self._set(alloc, ClientStatus="running")
            if not prestart:
                self._register_services(job, group, alloc, env)
            code = self._wait(alloc, proc, task)
            self.procs.pop(alloc["ID"], None)
            self._deregister_services(alloc)
            exit_code = self._terminated(alloc, name, code)
            if alloc["DesiredStatus"] == "stop":
                self._event(alloc, name, "Killed", "Task successfully killed")
                self._set(alloc, name, State="dead", Failed=False)
                return exit_code
            decision, reason, wait_s = tracker.next(exit_code)
            if decision == "done":
                self._set(alloc, name, State="dead", Failed=False)
                return 0
            if decision == "fail":
                details = {"fails_task": "true", "restart_reason": reason}
                self._event(
                    alloc, name, "Not Restarting", reason, Details=details, FailsTask=True, RestartReason=reason
                )
                self._set(alloc, name, State="dead", Failed=True)
                return exit_code or 1
            restarts += 1
            delay_ns = int(wait_s * NS)
            self._event(
                alloc,
                name,
                "Restarting",
                f"Task restarting in {go_duration(delay_ns)}",
                Details={"restart_reason": reason, "start_delay": str(delay_ns)},
                RestartReason=reason,
                StartDelay=delay_ns,
            )
            self._set(alloc, name, State="pending", Restarts=restarts, LastRestart=rfc3339(time.time_ns()))
            self._set(alloc, ClientStatus="pending")
            stop_at = time.monotonic() + wait_s
            while time.monotonic() < stop_at and alloc["DesiredStatus"] != "stop":
                time.sleep(0.02)
            if alloc["DesiredStatus"] == "stop":
                self._killing(alloc, task)
                self._set(alloc, name, State="dead", Failed=False)
                return exit_code

    def _wait(self, alloc: dict[str, Any], proc: subprocess.Popen[bytes], task: dict[str, Any]) -> int:
        """Wait for the task; when its allocation is stopped, send the kill signal and, after
        ``KillTimeout``, SIGKILL."""
        kill_at = None
        while True:
            code = proc.poll()
            if code is not None:
                return code
            if alloc["DesiredStatus"] == "stop" and kill_at is None:
                self._killing(alloc, task)
                kill_signal = getattr(signal, task.get("KillSignal") or "SIGINT", signal.SIGINT)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, kill_signal)
                kill_at = time.monotonic() + task.get("KillTimeout", 5 * NS) / NS
            if kill_at is not None and time.monotonic() > kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01)

    def _register_services(
        self, job: dict[str, Any], group: dict[str, Any], alloc: dict[str, Any], env: dict[str, str]
    ) -> None:
        """Register the group's services for this allocation (once; whether its checks pass
        or not, as Nomad does)."""
        for service in group.get("Services") or []:
            port = int(env[f"NOMAD_PORT_{service['PortLabel']}"])
            registration = {
                "Address": "127.0.0.1",
                "AllocID": alloc["ID"],
                "CreateIndex": self.index,
                "Datacenter": "dc1",
                "ID": f"_nomad-task-{alloc['ID']}-group-{group['Name']}-{service['Name']}-{service['PortLabel']}",
                "JobID": job["ID"],
                "ModifyIndex": self.index,
                "Namespace": job["Namespace"],
                "NodeID": alloc["NodeID"],
                "Port": port,
                "ServiceName": service["Name"],
                "Tags": service.get("Tags", []),
            }
            with self.lock:
                registrations = self.services.setdefault((job["Namespace"], service["Name"]), [])
                if all(r["ID"] != registration["ID"] for r in registrations):
                    registrations.append(registration)

    def _deregister_services(self, alloc: dict[str, Any]) -> None:
        with self.lock:
            for key, registrations in list(self.services.items()):
                self.services[key] = [r for r in registrations if r["AllocID"] != alloc["ID"]]
                if not self.services[key]:
                    del self.services[key]


def _probe(check: dict[str, Any], address: str, port: int) -> dict[str, Any]:
    """Run one check now: Status, Output (and StatusCode for an answered HTTP check)."""
    timeout = check.get("Timeout", 2 * NS) / NS
    if check.get("Type") == "http":
        url = f"http://{address}:{port}{check.get('Path') or '/'}"
        try:
            response = httpx.get(url, timeout=timeout)
        except httpx.HTTPError:
            reason = f"dial tcp {address}:{port}: connect: connection refused"
            return {"Output": f'nomad: Get "{url}": {reason}', "Status": "failure"}
        ok = 200 <= response.status_code < 300
        output = "nomad: http ok" if ok else f"nomad: http response code was {response.status_code}"
        return {"Output": output, "Status": "success" if ok else "failure", "StatusCode": response.status_code}
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return {"Output": "nomad: tcp ok", "Status": "success"}
    except OSError:
        return {"Output": f"nomad: dial tcp {address}:{port}: connect: connection refused", "Status": "failure"}


class _RestartTracker:
    """Nomad's client-side restart policy for one task. A task that succeeds is done
    when it is a batch job's or a prestart task; anything else that ends counts as a
    failure. Up to ``Attempts`` restarts within ``Interval`` (each after ``Delay``);
    then mode ``fail`` fails the task and mode ``delay`` waits out the interval and
    starts counting again, forever."""

    def __init__(self, policy: dict[str, Any], batch: bool, prestart: bool) -> None:
        self.policy = policy
        self.success_ends = batch or prestart
        self.window_start: float | None = None
        self.count = 0

    def next(self, exit_code: int) -> tuple[str, str, float]:
        """("done" | "fail" | "restart", reason, seconds to wait before the restart)."""
        if exit_code == 0 and self.success_ends:
            return "done", "", 0.0
        attempts, interval = self.policy["Attempts"], self.policy["Interval"] / NS
        delay = self.policy["Delay"] / NS
        now = time.monotonic()
        if self.window_start is None or now - self.window_start > interval:
            self.window_start, self.count = now, 0
        if self.count < attempts:
            self.count += 1
            return "restart", "Restart within policy", delay
        if self.policy["Mode"] == "delay":
            wait = self.window_start + interval - now + delay
            self.window_start, self.count = None, 0
            return "restart", "Exceeded allowed attempts, applying a delay", wait
        if attempts == 0:
            return "fail", "Policy allows no restarts", 0.0
        interval_text = go_duration(self.policy["Interval"])
        return "fail", f'Exceeded allowed attempts {attempts} in interval {interval_text} and mode is "fail"', 0.0


def cleanup(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
