"""Celery tasks of the editor. Each takes ids, loads rows, and calls one helper."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, name="webapp.ide.tasks.run_test")
def run_test(run_id: str) -> None:
    """Build the environment of a test run when it is not cached yet, then run it (webapp.ide.runner)."""
    from webapp.ide.runner import execute

    execute(run_id)


@shared_task(name="webapp.ide.tasks.retire_idle_warm_runners")
def retire_idle_warm_runners() -> int:
    """Stop warm runners nobody used for PODIUM_IDE_WARM_IDLE_S (beat runs it every minute)."""
    from webapp.ide.warm import retire_idle

    return retire_idle()
