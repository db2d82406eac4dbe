"""An in-process fake of the Nomad HTTP API endpoints Podium uses.

Built from Nomad's API documentation: same paths, field names, status codes and
error texts (validation errors as go-multierror prints them), so that the Nomad
executor can be checked by the same contract suite as the local executor. It
acts as server *and* client node: allocations run as local processes (like the
raw_exec driver) with the job's env interpolated (``${NOMAD_PORT_http}`` …),
logs in ``alloc/logs/<task>.std{out,err}.0``, restart policies applied, and
services registered with the Nomad provider while the task runs.

Endpoints: /v1/agent/self, /v1/namespace(s), /v1/jobs, /v1/job/:id (GET,
DELETE), /v1/job/:id/allocations, /v1/allocation/:id, /v1/evaluation/:id,
/v1/client/fs/logs/:alloc_id, /v1/service/:name.
"""

from __future__ import annotations

import base64
import contextlib
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
DRIVERS = {"exec", "raw_exec", "docker", "java"}


class NomadError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


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


class FakeNomad:
    def __init__(self, workdir: Path, token: str | None = None, nodes: list[dict[str, Any]] | None = None) -> None:
        self.workdir = workdir
        self.token = token
        self.nodes = nodes or [{"ID": str(uuid.uuid4()), "Name": "client-1", "Datacenter": "dc1", "Devices": []}]
        self.lock = threading.RLock()
        self.index = 1
        self.namespaces: dict[str, dict[str, Any]] = {"default": {"Name": "default", "Description": ""}}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocs: dict[str, dict[str, Any]] = {}
        self.evals: dict[str, dict[str, Any]] = {}
        self.services: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.requests: list[tuple[str, str]] = []
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
            ("GET", r"/v1/service/(?P<name>[^/]+)", lambda name: self.services.get((ns, name), [])),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                with self.lock:
                    return handler(**{k: v for k, v in match.groupdict().items() if v is not None})
        raise NomadError(404, "Invalid URL")

    # -- agent and namespaces --------------------------------------------------------

    def agent_self(self) -> dict[str, Any]:
        return {
            "config": {"Version": {"Version": "1.9.0"}, "Region": "global"},
            "member": {"Name": "fake-nomad.global", "Tags": {"build": "1.9.0", "region": "global"}},
        }

    def get_namespace(self, name: str) -> dict[str, Any]:
        if name not in self.namespaces:
            raise NomadError(404, "namespace not found")
        return self.namespaces[name]

    def put_namespace(self, name: str | None, body: Any) -> str:
        name = name or (body or {}).get("Name")
        if not name or not re.fullmatch(r"[a-zA-Z0-9-]{1,128}", name):
            raise multierror([f"invalid name {name!r}. Must match regex ^[a-zA-Z0-9-]{{1,128}}$"])
        self.namespaces[name] = {
            "Name": name,
            "Description": (body or {}).get("Description", ""),
            "CreateIndex": self._next_index(),
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
            "EvalID": evaluation["ID"],
            "EvalCreateIndex": index,
            "JobModifyIndex": index,
            "Warnings": "",
            "Index": index,
            "LastContact": 0,
            "KnownLeader": False,
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
        """The constraint no node meets (Nomad's filter name), or None when the group fits."""
        if any(task.get("Driver") not in DRIVERS for task in group["Tasks"]):
            return "missing drivers"
        if not all(self._device_fits(task) for task in group["Tasks"]):
            return "missing devices"
        return None

    def schedule(self, job: dict[str, Any]) -> dict[str, Any]:
        eval_id = str(uuid.uuid4())
        failed: dict[str, Any] = {}
        for group in job["TaskGroups"]:
            missing = self._unplaceable(group)
            if missing:
                failed[group["Name"]] = {
                    "NodesEvaluated": len(self.nodes),
                    "NodesFiltered": len(self.nodes),
                    "NodesAvailable": {"dc1": 1},
                    "ClassFiltered": {},
                    "ConstraintFiltered": {missing: len(self.nodes)},
                    "NodesExhausted": 0,
                    "ClassExhausted": {},
                    "DimensionExhausted": {},
                    "QuotaExhausted": None,
                    "CoalescedFailures": max(0, group.get("Count", 1) - 1),
                    "AllocationTime": 1000,
                    "Scores": None,
                }
        evaluation = {
            "ID": eval_id,
            "Namespace": job["Namespace"],
            "JobID": job["ID"],
            "Type": job["Type"],
            "TriggeredBy": "job-register",
            "Status": "complete",
            "FailedTGAllocs": failed or None,
            "BlockedEval": str(uuid.uuid4()) if failed else "",
            "CreateIndex": self._next_index(),
        }
        self.evals[eval_id] = evaluation
        if failed:
            return evaluation
        job["Status"] = "running"
        for group in job["TaskGroups"]:
            for index in range(group.get("Count", 1)):
                self._place(job, group, index, eval_id)
        return evaluation

    def _place(self, job: dict[str, Any], group: dict[str, Any], index: int, eval_id: str) -> None:
        alloc_id = str(uuid.uuid4())
        now = self._next_index()
        alloc = {
            "ID": alloc_id,
            "EvalID": eval_id,
            "Name": f"{job['ID']}.{group['Name']}[{index}]",
            "Namespace": job["Namespace"],
            "NodeID": self.nodes[0]["ID"],
            "NodeName": self.nodes[0]["Name"],
            "JobID": job["ID"],
            "TaskGroup": group["Name"],
            "DesiredStatus": "run",
            "ClientStatus": "pending",
            "TaskStates": {
                t["Name"]: {
                    "State": "pending",
                    "Failed": False,
                    "Restarts": 0,
                    "StartedAt": None,
                    "FinishedAt": None,
                    "Events": [],
                }
                for t in group["Tasks"]
            },
            "CreateIndex": now,
            "ModifyIndex": now,
            "CreateTime": time.time_ns(),
            "JobVersion": 0,
        }
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
        for alloc in self.allocs.values():
            if alloc["JobID"] == job_id and alloc["Namespace"] == ns:
                alloc["DesiredStatus"] = "stop"
                proc = self.procs.get(alloc["ID"])
                if proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
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

    def job_allocs(self, ns: str, job_id: str) -> list[dict[str, Any]]:
        self.get_job(ns, job_id)
        return [a for a in self.allocs.values() if a["JobID"] == job_id and a["Namespace"] == ns]

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
        if not query.get("task"):
            raise NomadError(400, "must provide task name")
        path = self.workdir / alloc_id / "alloc" / "logs" / f"{query['task']}.{kind}.0"
        data = path.read_bytes() if path.exists() else b""
        offset = int(query.get("offset", 0))
        chunk = data[offset:] if query.get("origin", "start") == "start" else data[max(0, len(data) - offset) :]
        if parse_bool(query.get("plain")):
            return chunk.decode(errors="replace")
        return {"Data": base64.b64encode(chunk).decode(), "File": path.name, "Offset": offset + len(chunk)}

    # -- the client node -----------------------------------------------------------------

    def _event(self, alloc: dict[str, Any], task: str, kind: str, **fields: Any) -> None:
        with self.lock:
            state = alloc["TaskStates"][task]
            details = {"message": str(fields.pop("message", kind))}
            if "ExitCode" in fields:
                details.update(
                    exit_code=str(fields["ExitCode"]),
                    signal=str(fields["Signal"]),
                    oom_killed=str(fields["OOMKilled"]).lower(),
                )
            event = {"Type": kind, "Time": time.time_ns(), "DisplayMessage": details["message"], "Details": details}
            event.update(fields)
            state["Events"].append(event)
            alloc["ModifyIndex"] = self._next_index()

    def _set(self, alloc: dict[str, Any], task: str | None = None, **fields: Any) -> None:
        with self.lock:
            target = alloc["TaskStates"][task] if task else alloc
            target.update(fields)
            alloc["ModifyIndex"] = self._next_index()

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

    def _run_alloc(self, job: dict[str, Any], group: dict[str, Any], alloc: dict[str, Any], index: int) -> None:
        alloc_dir = self.workdir / alloc["ID"]
        (alloc_dir / "alloc" / "logs").mkdir(parents=True)
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
        tasks = group["Tasks"]
        prestart = [t for t in tasks if (t.get("Lifecycle") or {}).get("Hook") == "prestart"]
        main = [t for t in tasks if t not in prestart]
        for task in prestart:
            if self._run_task(job, group, alloc, task, env, alloc_dir, prestart=True) != 0:
                self._set(alloc, ClientStatus="failed")
                return
        outcome = 0
        for task in main:
            outcome = self._run_task(job, group, alloc, task, env, alloc_dir, prestart=False)
        with self.lock:
            stopped = alloc["DesiredStatus"] == "stop"
            status = "complete" if stopped or outcome == 0 else "failed"
            self._set(alloc, ClientStatus=status)
            if all(
                a["ClientStatus"] in ("complete", "failed")
                for a in self.allocs.values()
                if a["JobID"] == job["ID"] and a["Namespace"] == job["Namespace"]
            ):
                job["Status"] = "dead"

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
        self._event(alloc, name, "Received", message="Task received by client")
        self._event(alloc, name, "Task Setup", message="Building Task Directory")
        try:
            self._fetch_artifacts(task, task_dir)
        except (httpx.HTTPError, tarfile.TarError, OSError) as exc:
            self._event(alloc, name, "Failed Artifact Download", message=str(exc))
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
            self._event(alloc, name, "Started", message="Task started by client")
            self._set(alloc, name, State="running", StartedAt=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            if alloc["ClientStatus"] == "pending" and not prestart:
                self._set(alloc, ClientStatus="running")
            self._register_services(job, group, alloc, env)
            code = self._wait(alloc, proc, task)
            self.procs.pop(alloc["ID"], None)
            self._deregister_services(job, alloc)
            signal_no = -code if code < 0 else 0
            exit_code = code if code >= 0 else 128 + signal_no
            self._event(
                alloc,
                name,
                "Terminated",
                message=f"Exit Code: {exit_code}",
                ExitCode=exit_code,
                Signal=signal_no,
                OOMKilled=False,
            )
            if alloc["DesiredStatus"] == "stop":
                self._event(alloc, name, "Killed", message="Task successfully killed")
                self._set(alloc, name, State="dead", Failed=False)
                return exit_code
            decision, reason, wait_s = tracker.next(exit_code)
            if decision == "done":
                self._set(alloc, name, State="dead", Failed=False)
                return 0
            if decision == "fail":
                self._event(alloc, name, "Not Restarting", message=reason)
                self._set(alloc, name, State="dead", Failed=True)
                return exit_code or 1
            restarts += 1
            self._event(alloc, name, "Restarting", message=f"Task restarting in {go_duration(int(wait_s * NS))}")
            self._set(alloc, name, State="pending", Restarts=restarts)
            self._set(alloc, ClientStatus="pending")
            stop_at = time.monotonic() + wait_s
            while time.monotonic() < stop_at and alloc["DesiredStatus"] != "stop":
                time.sleep(0.02)
            if alloc["DesiredStatus"] == "stop":
                self._set(alloc, name, State="dead")
                return exit_code

    def _wait(self, alloc: dict[str, Any], proc: subprocess.Popen[bytes], task: dict[str, Any]) -> int:
        kill_at = None
        while True:
            code = proc.poll()
            if code is not None:
                return code
            if alloc["DesiredStatus"] == "stop" and kill_at is None:
                kill_at = time.monotonic() + task.get("KillTimeout", 5 * NS) / NS
            if kill_at is not None and time.monotonic() > kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01)

    def _register_services(
        self, job: dict[str, Any], group: dict[str, Any], alloc: dict[str, Any], env: dict[str, str]
    ) -> None:
        for service in group.get("Services") or []:
            port = int(env[f"NOMAD_PORT_{service['PortLabel']}"])
            registration = {
                "ID": f"_nomad-task-{alloc['ID']}-group-{group['Name']}-{service['Name']}-{service['PortLabel']}",
                "ServiceName": service["Name"],
                "Namespace": job["Namespace"],
                "NodeID": alloc["NodeID"],
                "Datacenter": "dc1",
                "JobID": job["ID"],
                "AllocID": alloc["ID"],
                "Tags": service.get("Tags", []),
                "Address": "127.0.0.1",
                "Port": port,
                "CreateIndex": self.index,
                "ModifyIndex": self.index,
            }
            with self.lock:
                self.services.setdefault((job["Namespace"], service["Name"]), []).append(registration)

    def _deregister_services(self, job: dict[str, Any], alloc: dict[str, Any]) -> None:
        with self.lock:
            for key, registrations in list(self.services.items()):
                self.services[key] = [r for r in registrations if r["AllocID"] != alloc["ID"]]
                if not self.services[key]:
                    del self.services[key]


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
