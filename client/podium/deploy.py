"""``podium.deploy()``: package a model, upload it as a new version, follow its build and start.

Progress goes to stderr, one line per step, with its duration::

    podium: packaged   sklearn Pipeline, 4 requirements, 18.2 KiB             0.41s
    podium: uploaded   churn v3                                               0.12s
    podium: environment done                                                  1.20s
    podium: start      done                                                   0.80s
    podium: ready      done                                                   0.10s
    podium: live       churn v3 at http://podium:8000/v1/models/churn/versions/3/predict   (2.7s in all)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from podium.bundle import Bundle, _size, build, make_tarball
from podium.client import Client
from podium.errors import DeploymentFailed, DeploymentTimeout, PodiumError

TERMINAL = ("ready", "failed")
#: Flavors whose endpoint takes ``{"inputs": ...}`` and answers ``{"predictions": ...}``.
ARRAY_FLAVORS = ("sklearn", "torchscript", "torch_state")


class Progress:
    """Prints one line per finished step to a stream (stderr), aligned, with how long the step took."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.started = time.monotonic()

    def step(self, label: str, text: str, seconds: float | None = None) -> None:
        if not self.enabled:
            return
        timing = f"{seconds:6.2f}s" if seconds is not None else ""
        self.stream.write(f"podium: {label:<11} {text:<60} {timing}".rstrip() + "\n")
        self.stream.flush()

    def warn(self, text: str) -> None:
        """A warning is shown even when progress is off: it says what the deploy will not do."""
        self.stream.write(f"podium: warning: {text}\n")
        self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class LogLines(list[str]):
    """Log lines (``ts stream text``); printing it prints them one per line."""

    def __str__(self) -> str:
        return "\n".join(self)


#: Failed steps whose story is in the build log rather than the model server's.
BUILD_STEPS = ("environment", "build")


def format_log_line(line: Mapping[str, Any]) -> str:
    """``time stream text`` (``ts`` is accepted for the time too)."""
    when = line.get("time") or line.get("ts") or ""
    return f"{when} {line.get('stream', '')} {line.get('text', '')}".strip()


class Deployment:
    """A handle on one deployed model version: ``.predict(x)``, ``.url``, ``.version``, ``.logs()``."""

    def __init__(self, client: Client, name: str, version: int, flavor: str | None, info: dict[str, Any]) -> None:
        self.client = client
        self.name = name
        self.version = version
        self.flavor = flavor
        self.info = info

    def __repr__(self) -> str:
        return f"<Deployment {self.name} v{self.version} {self.status} {self.url}>"

    @property
    def status(self) -> str:
        return str(self.info.get("status", "unknown"))

    @property
    def url(self) -> str:
        """The version's predict URL (POST JSON to it with ``Authorization: Bearer <key>``)."""
        return str(self.info.get("endpoint") or self.client.predict_url(self.name, self.version))

    def refresh(self) -> Deployment:
        self.info = self.client.version(self.name, self.version)
        return self

    def predict(self, x: Any) -> Any:
        """Call this version. Scikit-learn and torch models get ``{"inputs": x}`` and return the predictions;
        a custom model gets ``x`` as its JSON body and returns its answer as it is."""
        if self.flavor in ARRAY_FLAVORS:
            answer = self.client.predict(self.name, {"inputs": x}, version=self.version)
            if isinstance(answer, dict) and "predictions" in answer:
                return answer["predictions"]
            return answer
        return self.client.predict(self.name, x, version=self.version)

    def logs(self, tail: int = 200, *, build: bool = False) -> LogLines:
        """The last ``tail`` lines of this version's model server logs (``build=True``: its environment build)."""
        lines = self.client.logs(self.name, self.version, tail=tail, source="build" if build else "runtime")
        return LogLines(format_log_line(line) for line in lines)


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except (TypeError, ValueError):
        return None


def wait_until_ready(
    client: Client, name: str, version: int, *, progress: Progress, timeout: float = 1800.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the version until it is ready (return it) or failed (raise DeploymentFailed with its log tail).

    Prints a line when each server step finishes; from a server that sends no ``steps``, one per status change.
    """
    deadline = time.monotonic() + timeout
    reported: set[str] = set()
    status, since = "queued", time.monotonic()
    delay = 0.2
    while True:
        info = client.version(name, version)
        for step in info.get("steps") or []:
            step_name = str(step.get("name"))
            if step.get("status") in ("done", "succeeded", "ready", "failed", "skipped") and step_name not in reported:
                reported.add(step_name)
                took = _seconds_between(step.get("started_at"), step.get("finished_at"))
                progress.step(step_name, str(step.get("status")), took)
        new_status = str(info.get("status"))
        if new_status != status:
            if "steps" not in info and status not in reported:
                progress.step(status, "done", time.monotonic() - since)
            status, since = new_status, time.monotonic()
        if status == "ready":
            return info
        if status == "failed":
            source = "build" if info.get("failed_step") in BUILD_STEPS else "runtime"
            try:
                lines = [format_log_line(line) for line in client.logs(name, version, tail=20, source=source)]
            except PodiumError:
                lines = []
            raise DeploymentFailed(name, version, info.get("failed_step"), info.get("error"), lines)
        if time.monotonic() > deadline:
            raise DeploymentTimeout(
                f"{name} v{version} is still {status} after {timeout:.0f}s; it goes on on the server: "
                f"podium logs {name} --version {version} --follow"
            )
        sleep(delay)
        delay = min(delay * 1.5, 2.0)


def deploy(
    obj: Any,
    name: str | None = None,
    *,
    requirements: Iterable[str] | None = None,
    gpu: int | None = None,
    cpu: float | None = None,
    memory: int | None = None,
    replicas: int | None = None,
    description: str = "",
    files: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] | None = None,
    wait: bool = True,
    promote: bool = True,
    example_input: Any = None,
    init_kwargs: Mapping[str, Any] | None = None,
    timeout: float = 1800.0,
    progress: bool = True,
    client: Client | None = None,
) -> Deployment:
    """Package ``obj``, upload it as a new version of model ``name``, and (``wait=True``) follow it until ready.

    ``obj``: a scikit-learn estimator or pipeline, a torch ``nn.Module``, a class or instance with ``load()``
    and ``predict()``, or the path of a directory (``model.py`` + ``requirements.txt``, or a Truss). Resources
    default to 1 CPU, 1024 MiB of memory, no GPU and 1 replica (a directory's podium.json may set them).
    ``promote=False`` leaves the production alias where it is (the server moves it once the version is ready).
    Raises :class:`~podium.errors.DeploymentFailed` naming the failing step, with the last log lines.
    """
    out = Progress(enabled=progress)
    own_client = client is None
    client = client or Client()
    try:
        with tempfile.TemporaryDirectory(prefix="podium-bundle-") as tmp:
            started = time.monotonic()
            bundle: Bundle = build(
                obj, Path(tmp) / "bundle", name=name, requirements=requirements, description=description,
                files=files, cpu=cpu, memory=memory, gpu=gpu, replicas=replicas, example_input=example_input,
                init_kwargs=init_kwargs,
            )
            tarball = Path(tmp) / f"{bundle.name}.tar.gz"
            size = make_tarball(bundle.root, tarball)
            out.step("packaged", f"{bundle.describe()}, {_size(size)}", time.monotonic() - started)
            for warning in bundle.warnings:
                out.warn(warning)
            started = time.monotonic()
            created = client.upload_version(
                bundle.name, tarball, description=bundle.manifest["description"], promote=promote
            )
        number = int(created["number"])
        out.step("uploaded", f"{bundle.name} v{number}", time.monotonic() - started)
        handle = Deployment(client, bundle.name, number, bundle.flavor, created)
        if wait:
            handle.info = wait_until_ready(client, bundle.name, number, progress=out, timeout=timeout)
            out.step("live", f"{bundle.name} v{number} at {handle.url}   ({out.elapsed():.1f}s in all)")
        own_client = False  # the handle keeps using it
        return handle
    finally:
        if own_client:
            client.close()
