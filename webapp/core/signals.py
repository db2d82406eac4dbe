"""Keep beat's schedule in the database in step with the code after each migrate."""

from __future__ import annotations

from typing import Any

PERIODIC_TASKS = {
    "prune expired invitations": ("workers.tasks.prune_expired_invitations", {"hours": 24}),
    "stop drained model versions": ("workers.tasks.stop_drained_versions", {"seconds": 30}),
    "retire idle warm runners": ("webapp.ide.tasks.retire_idle_warm_runners", {"seconds": 60}),
    # what should run against what the executor has: a job stopped by hand is noticed within a minute
    "reconcile sandboxes": ("workers.tasks.reconcile_sandboxes", {"seconds": 30}),
}


def ensure_periodic_tasks(**kwargs: Any) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, (task, every) in PERIODIC_TASKS.items():
        (period, amount), = every.items()
        schedule, _ = IntervalSchedule.objects.get_or_create(every=amount, period=period)
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": schedule})
