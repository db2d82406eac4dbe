"""A deleted version's sandbox stops with it.

Versions are only deleted with their workspace (by cascade); without this their model servers would keep
running, and holding memory, with nothing left to route to them or to stop them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from webapp.serving.models import ModelVersion

log = logging.getLogger(__name__)


def _stop(handle: dict[str, Any]) -> None:
    from sandbox import SandboxHandle, get_executor

    try:
        get_executor().stop(SandboxHandle.model_validate(handle), grace_s=2)
    except Exception:  # noqa: BLE001 - logged for the operator; the supervisor reaps the rest at its restart
        log.exception("could not stop the sandbox of a deleted model version")


@receiver(post_delete, sender=ModelVersion)
def stop_deleted_version(sender: type[ModelVersion], instance: ModelVersion, **kwargs: Any) -> None:
    handle = instance.sandbox
    if handle and instance.status not in ("stopped", "failed"):
        transaction.on_commit(lambda: threading.Thread(target=_stop, args=(handle,), daemon=True,
                                                       name="deleted-version-stop").start())
