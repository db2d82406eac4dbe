"""Sandboxes stop with the rows that own them.

:func:`stop_after_commit` stops a sandbox in a thread once the deletion of its owner commits (a rolled
back deletion stops nothing). Model versions are only deleted with their workspace (by cascade); without
this their model servers would keep running, and holding memory, with nothing left to route to them or to
stop them. The editor's warm runners use the same helper (webapp/ide/warm.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from webapp.serving.models import ModelVersion

log = logging.getLogger(__name__)


def stop_after_commit(handle: dict[str, Any] | None, what: str, then: Callable[[], None] | None = None) -> None:
    """Once the current transaction commits, stop the sandbox of ``handle`` (``what`` names its owner in
    the log), then call ``then`` (clean-up of its files), in a thread so that the deletion does not wait."""

    def stop() -> None:
        from sandbox import SandboxHandle, get_executor

        try:
            if handle is not None:
                get_executor().stop(SandboxHandle.model_validate(handle), grace_s=2)
        except Exception:  # noqa: BLE001 - logged for the operator; the supervisor reaps the rest at its restart
            log.exception("could not stop the sandbox of %s", what)
        if then is not None:
            then()

    transaction.on_commit(lambda: threading.Thread(target=stop, daemon=True, name="sandbox-stop").start())


@receiver(post_delete, sender=ModelVersion)
def stop_deleted_version(sender: type[ModelVersion], instance: ModelVersion, **kwargs: Any) -> None:
    if instance.sandbox and instance.status not in ("stopped", "failed"):
        stop_after_commit(instance.sandbox, f"deleted model version {instance.pk}")
