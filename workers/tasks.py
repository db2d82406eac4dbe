"""Celery tasks. Each takes ids, loads rows, and calls one action or helper."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation_email(invitation_id: int, token: str) -> None:
    from webapp.workspaces.models import Invitation

    invitation = Invitation.objects.select_related("workspace", "created_by").filter(pk=invitation_id).first()
    if invitation is None or invitation.status != "pending" or not invitation.email:
        return
    inviter = invitation.created_by.username if invitation.created_by else "A Podium admin"
    url = f"{settings.PODIUM_URL}/invitations/{token}"
    send_mail(
        subject=f"{inviter} invited you to {invitation.workspace.name} on Podium",
        message=(
            f"{inviter} invited you to join the workspace {invitation.workspace.name} as {invitation.role}.\n\n"
            f"Accept the invitation: {url}\n\n"
            f"The link expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
    log.info("sent invitation %s to its recipient", invitation_id)


@shared_task
def prune_expired_invitations() -> int:
    """Delete invitations that expired more than 30 days ago (beat runs it daily)."""
    from webapp.workspaces.models import Invitation

    cutoff = timezone.now() - dt.timedelta(days=30)
    deleted, _ = Invitation.objects.filter(accepted_at=None, expires_at__lt=cutoff).delete()
    return deleted


@shared_task(acks_late=True)
def deploy_version(version_id: int) -> None:
    """Build, start and check one model version (see webapp.serving.deploy)."""
    from webapp.serving.deploy import run_deploy

    run_deploy(version_id)


@shared_task
def stop_unused_versions(model_id: int) -> list[int]:
    from webapp.serving.deploy import stop_unused

    return stop_unused(model_id)


@shared_task
def stop_drained_versions() -> int:
    """Beat's sweep: stop what every model no longer routes to, once drained."""
    from webapp.serving.deploy import stop_unused
    from webapp.serving.models import Model

    return sum(len(stop_unused(model_id)) for model_id in Model.objects.values_list("pk", flat=True))


@shared_task
def reconcile_sandboxes() -> int:
    """Beat's reconciler: restart (or mark failed) ready versions whose sandboxes are gone, and retire warm
    runners whose sandboxes are (see webapp.serving.reconciler)."""
    from webapp.ide import warm
    from webapp.serving import reconciler

    return len(reconciler.reconcile()) + warm.retire_dead()
