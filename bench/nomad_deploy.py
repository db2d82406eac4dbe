"""A model deploy on Nomad, step by step, beside the targets of issue 18 (a benchmark, not a timed test).

Run: ``.venv/bin/python bench/nomad_deploy.py [--runs 5] [--requirements "scikit-learn==1.5.2"]``.

Without ``NOMAD_ADDR`` it starts the fake Nomad of the test suite (``tests/sandbox/fake_nomad.py``: one
"client" that runs allocations as local processes, no chroot, no CNI, no cgroups), so its figures say what
Podium's side and the fake cost, NOT what a cluster does. With ``NOMAD_ADDR`` (and ``NOMAD_TOKEN``) it deploys
to that cluster; its clients must reach ``--artifact-url`` (default ``http://127.0.0.1:<port>``, fine for a
one-node cluster on this machine), where this script serves Podium's own artifact view (Django's WSGI app).

Each run deploys the same custom model (the model server from ``sandbox/runtime``, as a deploy starts it) and
reads the steps from the allocation's task events (on a cluster, the client's clock):

- scheduling: the job registered -> the client received the allocation;
- task setup: received -> the artifacts start downloading (task directory, chroot, network);
- artifact fetch: downloading -> the task started (code, and the environment's archive when it has one);
- environment: the build job, once per requirements (0 when cached or when there are none);
- first answer: the task started -> the first ``GET /ready`` answered 200 at an address ``addresses()``
  gave (so on a cluster it includes the wait for the service check to pass);
- total: registered -> first answer (plus the environment on a cold run).
Only measured numbers are printed; a step with no event is shown as "-".
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))

# targets on one node, from issue 18 (seconds)
TARGETS = {"custom": 2.0, "requirements": 2.5}
MODEL = "class Model:\n    def load(self):\n        pass\n\n    def predict(self, body):\n        return body\n"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_artifacts(root: Path, url: str, key: str) -> None:
    """Podium's artifact view (GET and PUT, signed) on the port of ``url``, in a thread."""
    host = urlparse(url).hostname or "127.0.0.1"
    os.environ.update(DJANGO_SETTINGS_MODULE="webapp.settings", PODIUM_ARTIFACT_ROOT=str(root),
                      PODIUM_ARTIFACT_SIGNING_KEY=key, PODIUM_SECRET_KEY=secrets.token_hex(32),
                      PODIUM_ALLOWED_HOSTS=f"{host},127.0.0.1,localhost")
    import django
    from django.core.wsgi import get_wsgi_application

    django.setup()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would bury the table
    server = make_server("0.0.0.0", urlparse(url).port or 80, get_wsgi_application(),  # noqa: S104 - clients
                         handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def code_dir(root: Path) -> Path:
    code = root / "artifacts" / "bench" / "code"
    (code / "_podium").mkdir(parents=True, exist_ok=True)
    (code / "bundle").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "sandbox" / "runtime" / "model_server.py", code / "_podium" / "model_server.py")
    (code / "bundle" / "model.py").write_text(MODEL)
    manifest = {"format": 1, "flavor": "custom", "entrypoint": "model.py:Model", "requirements": []}
    (code / "bundle" / "podium.json").write_text(json.dumps(manifest))
    return code


def event_times(executor: Any, handle: Any) -> dict[str, float]:
    """First time (s since the epoch) of each task event type of the sandbox task."""
    (alloc,) = executor._allocations(handle)[:1]
    full = executor._call(executor.api.allocation.get_allocation, alloc["ID"])
    found: dict[str, float] = {}
    for event in ((full.get("TaskStates") or {}).get("sandbox") or {}).get("Events") or []:
        found.setdefault(event["Type"], event["Time"] / 1e9)
    return found


def deploy_once(executor: Any, spec: Any) -> dict[str, float | None]:
    registered = time.time()
    handle = executor.start(spec)
    answered = None
    deadline = time.monotonic() + 120
    while answered is None and time.monotonic() < deadline:
        for address in executor.addresses(handle):
            try:
                if httpx.get(f"{address}/ready", timeout=2).status_code == 200:
                    answered = time.time()
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.01)
    events = event_times(executor, handle)
    executor.stop(handle, grace_s=1)
    received = events.get("Received")
    downloading = events.get("Downloading Artifacts")
    started = events.get("Started")

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    return {
        "scheduling": span(registered, received),
        "task setup": span(received, downloading or started),
        "artifact fetch": span(downloading, started),
        "first answer": span(started, answered),
        "total": span(registered, answered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requirements", default="", help="requirement lines, ';'-separated (default: none)")
    parser.add_argument("--artifact-url", default="", help="where Nomad clients reach this script's server")
    args = parser.parse_args()

    from sandbox import SandboxSpec, nomad_jobs
    from sandbox.environments import EnvironmentBuilder
    from sandbox.executors.nomad import NomadConfig, NomadExecutor

    work = Path(tempfile.mkdtemp(prefix="podium-bench-nomad-"))
    key = secrets.token_hex(16)
    url = args.artifact_url or f"http://127.0.0.1:{free_port()}"
    serve_artifacts(work, url, key)
    fake = None
    address = os.environ.get("NOMAD_ADDR", "")
    if not address:
        from fake_nomad import FakeNomad

        fake = FakeNomad(work / "nomad").start()
        address = fake.address
    where = f"Nomad at {address}" if fake is None else "the FAKE Nomad (local processes: not a cluster's numbers)"
    settings = nomad_jobs.NomadSettings(datacenters=os.environ.get("PODIUM_NOMAD_DATACENTERS", "*").split(","))
    executor = NomadExecutor(NomadConfig(address=address, token=os.environ.get("NOMAD_TOKEN") or None,
                                         settings=settings, artifact_url=f"{url}/sandbox-artifacts",
                                         artifact_root=work, signing_key=key.encode()))
    requirements = "\n".join(line.strip() for line in args.requirements.split(";") if line.strip())
    builder = EnvironmentBuilder(root=work / "sandbox" / "envs", executor=executor)
    built = time.monotonic()
    environment = builder.ensure(requirements, tenant="w0")
    build_s = time.monotonic() - built if not environment.cached and requirements else 0.0
    spec = SandboxSpec(workspace="bench", name="bench-model", purpose="server", code_dir=code_dir(work),
                       environment=environment.path,
                       command=["python", "/code/_podium/model_server.py", "/code/bundle", "--concurrency", "1"])
    try:
        runs = [deploy_once(executor, spec) for _ in range(args.runs)]
    finally:
        if fake is not None:
            fake.close()
        shutil.rmtree(work, ignore_errors=True)

    target = TARGETS["requirements" if requirements else "custom"]
    print(f"deploy of a custom model{' with ' + requirements.replace(chr(10), ', ') if requirements else ''} "
          f"on {where}; median of {len(runs)} runs")
    print(f"{'step':<16}{'median s':>10}{'max s':>10}   target")
    for step in ("scheduling", "task setup", "artifact fetch", "first answer", "total"):
        values = [value for r in runs if (value := r[step]) is not None]
        median = f"{statistics.median(values):.3f}" if values else "-"
        worst = f"{max(values):.3f}" if values else "-"
        goal = f"<= {target:g} s deploy -> first answer" if step == "total" else ""
        print(f"{step:<16}{median:>10}{worst:>10}   {goal}")
    print(f"{'environment':<16}{build_s:>10.3f}{'':>10}   built once per requirements "
          f"({'cached or none' if not build_s else 'this run built it'})")


if __name__ == "__main__":
    main()
