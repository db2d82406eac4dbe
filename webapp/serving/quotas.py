"""Per-workspace quotas: what one workspace may hold of this Podium's machines at once.

A **quota** bounds a workspace's live model replicas and the CPU, memory and GPUs they ask for (summed over
every version that is deploying, ready or stopping: the old version of a rollout and the one kept warm for
rollback count until they stop), and how many editor test runs and environment builds it runs at once.
Defaults are the operator's (``PODIUM_QUOTA_*`` settings); ``manage.py quota <slug> --memory-mib 32768``
raises or lowers one workspace's (``Workspace.quotas`` holds its overrides). A deploy or test run that would
go over is refused before anything starts, with a message naming the quota, what is in use and what to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from webapp.workspaces.actions import ActionError
from webapp.workspaces.models import Workspace

LIVE = ("queued", "building", "starting", "ready", "stopping")


@dataclass(frozen=True)
class Quota:
    name: str
    label: str
    phrase: str  # an amount of it in a sentence: "{} of memory"
    setting: str

    def show(self, amount: float) -> str:
        if self.name == "memory_mib":
            return f"{amount / 1024:g} GiB" if amount >= 1024 else f"{amount:g} MiB"
        return f"{amount:g}"

    def say(self, amount: float) -> str:
        return self.phrase.format(self.show(amount))


QUOTAS: dict[str, Quota] = {q.name: q for q in (
    Quota("replicas", "Model replicas", "{} model replicas", "PODIUM_QUOTA_REPLICAS"),
    Quota("cpu", "CPU cores", "{} CPU cores", "PODIUM_QUOTA_CPU"),
    Quota("memory_mib", "Memory", "{} of memory", "PODIUM_QUOTA_MEMORY_MIB"),
    Quota("gpus", "GPUs", "{} GPUs", "PODIUM_QUOTA_GPUS"),
    Quota("test_runs", "Test runs at once", "{} test runs", "PODIUM_QUOTA_TEST_RUNS"),
    Quota("builds", "Environment builds at once", "{} environment builds", "PODIUM_QUOTA_BUILDS"),
)}


def limits(workspace: Workspace) -> dict[str, float]:
    """The operator's defaults, overridden by the workspace's own ``quotas``."""
    found = {name: float(getattr(settings, quota.setting)) for name, quota in QUOTAS.items()}
    for name, value in (workspace.quotas or {}).items():
        if name in found:
            found[name] = float(value)
    return found


def usage(workspace: Workspace) -> dict[str, float]:
    from webapp.ide.models import TestRun
    from webapp.serving.models import ModelVersion

    live = ModelVersion.objects.filter(workspace=workspace, status__in=LIVE).aggregate(
        sum_replicas=Sum("replicas"), sum_cpu=Sum(F("cpu") * F("replicas")),
        sum_memory_mib=Sum(F("memory_mib") * F("replicas")), sum_gpus=Sum(F("gpus") * F("replicas")))
    # A run that a dead worker left "running" stops counting once it is older than any run can last.
    cutoff = timezone.now() - dt.timedelta(seconds=settings.PODIUM_IDE_TEST_WALL_S + 1800)
    runs = TestRun.objects.filter(workspace=workspace, created_at__gte=cutoff)
    building = (ModelVersion.objects.filter(workspace=workspace, status="building").count()
                + runs.filter(status="building").count())
    return {
        **{name.removeprefix("sum_"): float(value or 0) for name, value in live.items()},
        "test_runs": float(runs.filter(status__in=("queued", "building", "running")).count()),
        "builds": float(building),
    }


def report(workspace: Workspace) -> list[dict[str, Any]]:
    """Every quota with its use, for the settings page and the API."""
    used, limit = usage(workspace), limits(workspace)
    return [{"name": name, "label": quota.label, "used": used[name], "limit": limit[name],
             "shown": f"{quota.show(used[name])} of {quota.show(limit[name])}",
             "percent": min(100, round(100 * used[name] / limit[name])) if limit[name] else (100 if used[name] else 0)}
            for name, quota in QUOTAS.items()]


def check_version(workspace: Workspace, *, replicas: int, cpu: float, memory_mib: int, gpus: int,
                  needs_build: bool) -> None:
    """Refuse (409) a version whose replicas would take the workspace past a quota."""
    asked = {"replicas": replicas, "cpu": cpu * replicas, "memory_mib": memory_mib * replicas, "gpus": gpus * replicas}
    used, limit = usage(workspace), limits(workspace)
    for name, amount in asked.items():
        if amount and used[name] + amount > limit[name]:
            quota = QUOTAS[name]
            raise ActionError(
                f"This version needs {quota.say(amount)} ({replicas} replica{'s' if replicas != 1 else ''}); "
                f"the workspace's {quota.label.lower()} quota is {quota.show(limit[name])} and "
                f"{quota.show(used[name])} is in use. Stop or delete versions you no longer need, ask for fewer "
                "resources (podium.json's resources and replicas), or ask the operator to raise the quota.",
                status=409, field="quota")
    if needs_build:
        _check_count(used, limit, "builds", "builds at once", "once one has finished")


def check_test_run(workspace: Workspace) -> None:
    used, limit = usage(workspace), limits(workspace)
    _check_count(used, limit, "test_runs", "test runs at once", "once one has finished")


def _check_count(used: dict[str, float], limit: dict[str, float], name: str, what: str, when: str) -> None:
    if used[name] + 1 > limit[name]:
        raise ActionError(f"{QUOTAS[name].say(used[name])} are running in this workspace, its quota of "
                          f"{what}: {limit[name]:g}; try again {when}, or ask the operator to raise the quota.",
                          status=409, field="quota")
