"""Running a test run: environment, sandbox, result.

A test run runs ``sandbox/runtime/test_harness.py`` on the files with the
model's environment, under a wall-time limit (``PODIUM_IDE_TEST_WALL_S``, 120 s),
in one of two places:

- the member's **warm runner** for this environment and set of imports, when one
  is ready (``webapp/ide/warm.py``): the bundle goes over its socket and a child
  forked from a process that already imported the libraries runs the harness;
- otherwise a **oneshot sandbox**, on a copy of the files mounted read-only at
  ``/code/bundle``; afterwards a warm runner is started for the next run.

Where the run is driven from: when the environment for the requirements is
already built (a file check), :func:`dispatch` runs it at once in a thread of the
calling process, so a click does not wait for a Celery hop; otherwise the
Celery task ``webapp.ide.tasks.run_test`` builds the environment in the worker
and runs it there. Either way only a sandbox runs the user's code: this module
writes files, talks to the executor or the runner and reads the harness's output.

Live output: each line goes to a Redis list (``podium:ide:run:<id>:lines``,
what a late websocket or a GET reads first) and then to the channel group
``ide.testrun.<id>`` with its index, so a websocket that joins the group before
reading the list misses nothing and drops duplicates by index. The whole
output is stored on the run when it ends.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from sandbox import Limits, Network, SandboxError, SandboxHandle, SandboxSpec, get_executor
from webapp.ide import actions, warm
from webapp.ide import files as f
from webapp.ide.models import TestRun
from webapp.serving import environments
from webapp.serving.bundles import RUNTIME_DIR

log = logging.getLogger(__name__)
RESULT_PREFIX = "@@podium-test-result@@ "
LINES_TTL_S = 3600


def group_name(run_id: str) -> str:
    return f"ide.testrun.{run_id}"


def lines_key(run_id: str) -> str:
    return f"podium:ide:run:{run_id}:lines"


def live_lines(run_id: str) -> list[dict[str, Any]]:
    raw = actions._redis(settings.REDIS_URL).lrange(lines_key(run_id), 0, -1)
    return [json.loads(item) for item in raw]


def wall_time_s() -> float:
    return float(getattr(settings, "PODIUM_IDE_TEST_WALL_S", 120))


def run_dir(run: TestRun) -> Path:
    return Path(settings.PODIUM_ARTIFACTS_DIR) / str(run.workspace_id) / str(run.model_id) / "test-runs" / run.pk


def status_message(run: TestRun) -> dict[str, Any]:
    return {"event": "status", "status": run.status, "result": run.result, "error": run.error,
            "failed_step": run.failed_step or None, "warm": run.warm}


# Runs started in threads of this process at once; beyond that they queue for the worker.
_THREAD_SLOTS = threading.BoundedSemaphore(8)


def dispatch(run_id: str) -> None:
    """Start the run now in a thread when its environment is built, else queue it for the worker.
    Never raises (it runs after the request's commit): a run that cannot start is marked failed."""
    run = TestRun.objects.select_related("model", "workspace").filter(pk=run_id).first()
    if run is None:
        return
    try:
        if environments.lookup(run.requirements, run.workspace) is not None and _THREAD_SLOTS.acquire(blocking=False):
            thread = threading.Thread(target=_in_thread, args=(run_id,), name=f"test-run-{run_id}", daemon=True)
            _threads.add(thread)
            thread.start()
            return
        from webapp.ide.tasks import run_test

        run_test.delay(run_id)
    except Exception as exc:  # noqa: BLE001 - reported on the run, never a server error after commit
        log.exception("could not start test run %s", run_id)
        Reporter(run).status("failed", failed_step="start",
                             error=_error("PlatformError", f"The test run could not start: {exc}"))


_threads: set[threading.Thread] = set()


def _in_thread(run_id: str) -> None:
    try:
        execute(run_id)
    finally:
        _THREAD_SLOTS.release()
        connection.close()
        _threads.discard(threading.current_thread())


def join_threads(timeout: float = 60.0) -> None:
    """Wait for the runs this process runs in threads, and the warm runners they start (tests)."""
    for thread in list(_threads):
        thread.join(timeout)
    warm.join_pending(timeout)


class Reporter:
    """Sends a run's lines and status changes live, and keeps them for the record."""

    def __init__(self, run: TestRun) -> None:
        self.run = run
        self.lines: list[dict[str, Any]] = []
        self.redis = actions._redis(settings.REDIS_URL)
        self.layer = get_channel_layer()

    def _send(self, message: dict[str, Any]) -> None:
        if self.layer is None:
            return
        try:
            async_to_sync(self.layer.group_send)(group_name(self.run.pk), {"type": "run.message", **message})
        except Exception:  # noqa: BLE001 - a lost live line never fails the run; GET still has it
            log.warning("could not send live output of test run %s", self.run.pk, exc_info=True)

    def line(self, stream: str, text: str, when: str | None = None) -> None:
        entry = {"time": when or timezone.now().isoformat(), "stream": stream, "text": text}
        index = len(self.lines)
        self.lines.append(entry)
        try:
            key = lines_key(self.run.pk)
            self.redis.rpush(key, json.dumps(entry))
            self.redis.expire(key, LINES_TTL_S)
        except Exception:  # noqa: BLE001
            log.warning("could not keep live output of test run %s", self.run.pk, exc_info=True)
        self._send({"event": "line", "index": index, "line": entry})

    def status(self, status: str, **fields: Any) -> None:
        self.run.status = status
        for name, value in fields.items():
            setattr(self.run, name, value)
        update = ["status", *fields]
        if status in ("passed", "failed"):
            self.run.output, self.run.finished_at = self.lines, timezone.now()
            update += ["output", "finished_at"]
        self.run.save(update_fields=update)
        self._send(status_message(self.run))


def execute(run_id: str) -> None:
    """Run one test run to its end and record the outcome. Safe to call twice (a redelivered task)."""
    close_old_connections()
    run = TestRun.objects.select_related("model", "workspace").filter(pk=run_id).first()
    if run is None or run.status != "queued":
        return
    reporter = Reporter(run)
    TestRun.objects.filter(pk=run_id).update(started_at=timezone.now())
    workdir = run_dir(run)
    try:
        environment = _environment(run, reporter)
        if environment is None:
            return
        manifest, binaries = _bundle_parts(run)
        network = warm.test_network(run)
        wanted = warm.wanted_for(run, environment, manifest, network)
        if wanted is not None and _run_warm(run, reporter, wanted, manifest, binaries):
            return
        handle = _start(run, reporter, workdir, environment, manifest, binaries, network)
        if handle is None:
            return
        _follow(run, reporter, handle)
        if wanted is not None:
            warm.start_soon(wanted, run.model.name)  # so that the next run of this member is warm
    except Exception as exc:  # noqa: BLE001 - any failure is reported on the run, never lost
        log.exception("test run %s failed", run_id)
        reporter.line("system", f"podium: {type(exc).__name__}: {exc}")
        reporter.status("failed", failed_step="start", error=_error("PlatformError", f"{type(exc).__name__}: {exc}"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _error(kind: str, message: str, traceback: str = "", line: int | None = None,
           path: str | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "traceback": traceback, "line": line, "path": path}


def _environment(run: TestRun, reporter: Reporter) -> Path | None:
    found = environments.lookup(run.requirements, run.workspace)
    if found is None:
        reporter.status("building", environment_cached=False)
        reporter.line("system", "podium: building the environment from requirements.txt")
        try:
            found = environments.ensure(run.requirements, run.workspace,
                                        on_output=lambda text: reporter.line("build", text))
        except SandboxError as exc:
            reporter.line("system", str(exc))
            reporter.status("failed", failed_step="environment",
                            error=_error("EnvironmentBuildError", f"Installing the requirements failed:\n{exc}"))
            return None
    else:
        run.environment_cached = True
    return found.path


def _spec(run: TestRun, workdir: Path, environment: Path, manifest: dict[str, Any],
          network: Network) -> SandboxSpec:
    return SandboxSpec(
        workspace=run.workspace.slug,
        name=f"{run.model.name[:40].rstrip('-')}-test",
        purpose="oneshot",
        command=["python", "/code/_podium/test_harness.py", "/code/bundle", "/code/sample_input.json"],
        code_dir=workdir / "code",
        environment=environment,
        env=dict(warm.TEST_ENV),
        resources=warm.test_resources(manifest),
        limits=Limits(wall_time_s=wall_time_s()),
        network=network,
    )


def _bundle_parts(run: TestRun) -> tuple[dict[str, Any], dict[str, Path]]:
    """The run's manifest and the saved source's binary files it uses."""
    source = actions.source_of(run.model)
    binaries = actions._binaries(run.model, source, run.files)
    return f.manifest_for(run.files, list(binaries)), binaries


def _lay_out(run: TestRun, workdir: Path, manifest: dict[str, Any], binaries: dict[str, Path]) -> None:
    code = workdir / "code"
    shutil.rmtree(workdir, ignore_errors=True)
    (code / "bundle").mkdir(parents=True)
    (code / "_podium").mkdir()
    f.write_tree(code / "bundle", run.files, binaries, manifest)
    for name in ("test_harness.py", "model_server.py"):
        shutil.copy2(RUNTIME_DIR / name, code / "_podium" / name)
    (code / "sample_input.json").write_text(json.dumps(run.sample_input))
    for directory in (workdir.parent, workdir):
        directory.chmod(0o755)
    for dirpath, _dirs, names in os.walk(workdir):
        os.chmod(dirpath, 0o755)  # noqa: S103 - sandboxes read (never write) the files
        for name in names:
            os.chmod(os.path.join(dirpath, name), 0o644)


def _start(run: TestRun, reporter: Reporter, workdir: Path, environment: Path, manifest: dict[str, Any],
           binaries: dict[str, Path], network: Network) -> SandboxHandle | None:
    _lay_out(run, workdir, manifest, binaries)
    try:
        handle = get_executor().start(_spec(run, workdir, environment, manifest, network))
    except SandboxError as exc:
        reporter.line("system", f"podium: the sandbox could not start: {exc}")
        reporter.status("failed", failed_step="start", error=_error("SandboxError", str(exc)))
        return None
    reporter.status("running", sandbox=handle.model_dump(mode="json"),
                    environment_cached=run.environment_cached, warm=False)
    return handle


def _follow(run: TestRun, reporter: Reporter, handle: SandboxHandle) -> None:
    executor = get_executor()
    lines = ((line.stream, line.text, line.time.isoformat()) for line in executor.logs(handle, follow=True))
    outcome, phase = _relay(reporter, lines)
    status = executor.wait(handle, timeout=10)
    if not status.done:
        status = executor.stop(handle, grace_s=1)
    _finish(reporter, outcome, phase, limit=status.limit, reason=status.reason, exit_code=status.exit_code)


def _run_warm(run: TestRun, reporter: Reporter, wanted: warm.Wanted, manifest: dict[str, Any],
              binaries: dict[str, Path]) -> bool:
    """Run in a ready warm runner: True when it ran (its outcome is recorded), False when there is no
    runner or it could not take the run before anything ran (the caller runs it the oneshot way)."""
    found = warm.find(wanted)
    if found is None:
        return False
    bundle = f.bundle_tar(run.files, binaries, manifest)
    frames = warm.run(found.address, found.runner.pk, bundle, run.sample_input, wall_time_s())
    try:
        first = next(frames)
    except warm.RunnerUnreachable as exc:
        log.info("warm runner %s did not take test run %s: %s", found.runner.pk, run.pk, exc)
        warm.retire_if_dead(found)
        return False
    except StopIteration:
        first = None
    reporter.status("running", sandbox=found.runner.handle, environment_cached=True, warm=True)
    ending: dict[str, Any] = {}

    def lines() -> Iterator[tuple[str, str, str | None]]:
        for frame in itertools.chain([first] if first else [], frames):
            if "exit" in frame:
                ending.update(frame)
                return
            yield str(frame.get("stream", "stdout")), str(frame.get("text", "")), frame.get("time")

    outcome, phase = _relay(reporter, lines())
    if not ending:
        warm.retire_if_dead(found)
        reason = "the warm sandbox stopped during the run"
    else:
        reason = ending.get("reason")
    _finish(reporter, outcome, phase, limit=ending.get("limit"), reason=reason, exit_code=ending.get("exit"))
    return True


def _relay(reporter: Reporter, lines: Iterable[tuple[str, str, str | None]]) -> tuple[dict[str, Any] | None, str]:
    """Pass the run's output on, live; the harness's result line (not shown) and the phase reached."""
    outcome: dict[str, Any] | None = None
    phase = "load"
    for stream, text, when in lines:
        if text.startswith(RESULT_PREFIX):
            try:
                outcome = json.loads(text[len(RESULT_PREFIX):])
            except ValueError:
                outcome = None
            continue
        if text.startswith("[podium] loaded in"):
            phase = "predict"
        reporter.line(stream, text, when)
    return outcome, phase


def _finish(reporter: Reporter, outcome: dict[str, Any] | None, phase: str, *, limit: str | None,
            reason: str | None, exit_code: int | None) -> None:
    if limit is not None:
        message = reason or f"the {limit} limit was reached"
        reporter.line("system", f"podium: {message}")
        reporter.status("failed", failed_step="limit", error=_error("LimitExceeded", message))
    elif outcome is not None and outcome.get("ok"):
        result = {k: outcome.get(k) for k in ("load_ms", "predict_ms", "answer")}
        reporter.status("passed", result=result)
    elif outcome is not None:
        error = outcome.get("error") or _error("Error", "the test failed")
        reporter.status("failed", failed_step=outcome.get("step", phase), error=error)
    else:
        message = reason or f"the sandbox exited with code {exit_code} before reporting a result"
        reporter.line("system", f"podium: {message}")
        reporter.status("failed", failed_step=phase, error=_error("SandboxExited", message))


def interrupted(run: TestRun) -> bool:
    """A run that should long have ended (its process died): reported as failed by readers."""
    if run.done:
        return False
    limit = wall_time_s() + 600 + (3600 if run.status in ("queued", "building") else 0)
    return (timezone.now() - run.created_at).total_seconds() > limit


