"""Every write to workspaces, members, invitations and API keys.

Views, API endpoints, consumers, tasks and management commands call these
functions; none of them writes those tables itself. Each action runs in one
transaction, records an :class:`AuditEvent` and publishes a live event after
commit. Rule violations raise :class:`ActionError` with a message written for
the person who made the request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from webapp.lib import keys
from webapp.workspaces import events, key_cache
from webapp.workspaces.access import Access, Actor
from webapp.workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Workspace
from webapp.workspaces.scopes import KEY_SCOPES, ROLES, scopes_allowed_for_role

if TYPE_CHECKING:
    pass

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
RESERVED_SLUGS = {"new", "api", "admin", "static", "accounts", "settings", "invitations", "w", "ws"}


class ActionError(Exception):
    """A request Podium refuses, with a message that says what to do instead.

    ``status`` is the HTTP status the API answers with (400 bad input, 403 not
    allowed for this role, 409 conflicts with the current state).
    """

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


def record(
    actor: Actor,
    workspace: Workspace | None,
    action: str,
    obj: Any = None,
    **data: Any,
) -> AuditEvent:
    return AuditEvent.objects.create(
        workspace=workspace,
        actor=actor.user,
        actor_label=actor.label,
        api_key=actor.api_key,
        action=action,
        object_type=type(obj).__name__.lower() if obj is not None else "",
        object_id=str(getattr(obj, "pk", "") or ""),
        object_repr=str(obj)[:200] if obj is not None else "",
        data=data,
        ip=actor.ip,
        user_agent=actor.user_agent,
    )


def _require(access: Access, perm: str, what: str) -> None:
    if not access.can(perm):
        raise ActionError(_refusal(access, perm, f"Your role ({access.role}) does not allow you to {what}."),
                          status=403)


def _refusal(access: Access, perm: str, message: str) -> str:
    """``message`` when the caller's role is why; when the role allows it but the API key does not,
    what the key lacks (a key that has a scope is never told to get it)."""
    return access.why_not(perm) if perm in ROLES[access.role] else message


# Workspaces -----------------------------------------------------------------


def _free_slug(name: str) -> str:
    base = slugify(name)[:40].strip("-") or "workspace"
    if base in RESERVED_SLUGS:
        base = f"{base}-ws"
    slug = base
    while Workspace.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(2)}"
    return slug


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ActionError("Give the workspace a name.", field="name")
    if len(name) > 80:
        raise ActionError("Workspace names are at most 80 characters.", field="name")
    return name


def create_workspace(actor: Actor, name: str, slug: str | None = None) -> Workspace:
    if actor.user is None or actor.api_key is not None:
        raise ActionError("Sign in to create a workspace; API keys belong to one workspace.", status=403)
    name = _clean_name(name)
    if slug:
        slug = slug.strip().lower()
        if not SLUG_RE.match(slug) or slug in RESERVED_SLUGS:
            raise ActionError(
                "The URL name may use lowercase letters, digits and dashes (1-48 characters).", field="slug"
            )
        if Workspace.objects.filter(slug=slug).exists():
            raise ActionError(f"The URL name '{slug}' is taken; choose another.", status=409, field="slug")
    with transaction.atomic():
        try:
            workspace = Workspace.objects.create(name=name, slug=slug or _free_slug(name), created_by=actor.user)
        except IntegrityError:
            raise ActionError("That URL name was just taken; choose another.", status=409, field="slug") from None
        Membership.objects.create(workspace=workspace, user=actor.user, role="owner")
        record(actor, workspace, "workspace.create", workspace)
    return workspace


def rename_workspace(actor: Actor, access: Access, name: str) -> Workspace:
    _require(access, "workspace.update", "rename the workspace")
    name = _clean_name(name)
    workspace = access.workspace
    with transaction.atomic():
        old = workspace.name
        workspace.name = name
        workspace.save(update_fields=["name"])
        record(actor, workspace, "workspace.rename", workspace, old=old, new=name)
        events.publish(workspace.pk, "workspace.renamed", {"name": name})
    return workspace


NO_OUTBOUND = (
    "The {executor} executor cannot give sandboxes internet access without also exposing Podium's own services "
    "(its database and Redis) to them; run sandboxes on a Nomad cluster (PODIUM_EXECUTOR=nomad) to allow it."
)


def set_outbound_network(actor: Actor, access: Access, allow: bool) -> Workspace:
    """Let this workspace's sandboxes reach the internet, or take that back (admins)."""
    _require(access, "workspace.update", "change the workspace's network policy")
    if allow:
        from sandbox import get_executor

        executor = get_executor()
        if not executor.supports_outbound_network:
            raise ActionError(NO_OUTBOUND.format(executor=executor.name), status=409,
                              field="allow_outbound_network")
    workspace = access.workspace
    with transaction.atomic():
        workspace.allow_outbound_network = allow
        workspace.save(update_fields=["allow_outbound_network"])
        record(actor, workspace, "workspace.network", workspace, allow_outbound_network=allow)
        events.publish(workspace.pk, "workspace.network", {"allow_outbound_network": allow})
    return workspace


def delete_workspace(actor: Actor, access: Access, confirm: str) -> None:
    """Delete the workspace and, by cascade, everything that belongs to it."""
    _require(access, "workspace.delete", "delete the workspace")
    workspace = access.workspace
    if confirm != workspace.slug:
        raise ActionError(
            f"To delete this workspace, type its URL name '{workspace.slug}' to confirm.", field="confirm"
        )
    with transaction.atomic():
        record(actor, None, "workspace.delete", workspace, slug=workspace.slug)
        key_cache.announce()
        events.publish(workspace.pk, "workspace.deleted", {})
        workspace.delete()


# Members --------------------------------------------------------------------


def _owner_count(workspace: Workspace) -> int:
    return Membership.objects.filter(workspace=workspace, role="owner").count()


def change_role(actor: Actor, access: Access, membership: Membership, role: str) -> Membership:
    _require(access, "members.manage", "change roles")
    if role not in ROLES:
        raise ActionError(f"Unknown role '{role}'; use one of {', '.join(ROLES)}.", field="role")
    if "owner" in (role, membership.role) and not access.can("owners.manage"):
        raise ActionError(_refusal(access, "owners.manage", "Only owners can make or unmake owners."), status=403)
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        # Lock every owner row so two concurrent demotions cannot both pass the check.
        owners = list(Membership.objects.select_for_update().filter(workspace=access.workspace, role="owner"))
        if locked.role == "owner" and role != "owner" and len(owners) <= 1:
            raise ActionError(
                "This is the workspace's last owner; make someone else an owner first.", status=409
            )
        old = locked.role
        locked.role = role
        locked.save(update_fields=["role"])
        record(actor, access.workspace, "member.role_change", locked, user=locked.user.username, old=old, new=role)
        key_cache.announce()
        events.publish(access.workspace.pk, "member.changed", {"user": locked.user.username, "role": role})
    return locked


def _remove(actor: Actor, workspace: Workspace, membership: Membership, action: str) -> None:
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        owners = list(Membership.objects.select_for_update().filter(workspace=workspace, role="owner"))
        if locked.role == "owner" and len(owners) <= 1:
            raise ActionError(
                "The last owner cannot leave or be removed; make someone else an owner first, "
                "or delete the workspace.",
                status=409,
            )
        # A former member's keys stop working with their membership.
        ApiKey.objects.filter(workspace=workspace, created_by=locked.user, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        record(actor, workspace, action, locked, user=locked.user.username, role=locked.role)
        key_cache.announce()
        events.publish(workspace.pk, "member.removed", {"user": locked.user.username})
        locked.delete()


def remove_member(actor: Actor, access: Access, membership: Membership) -> None:
    if membership.user_id == access.membership.user_id:
        return leave_workspace(actor, access)
    _require(access, "members.manage", "remove members")
    if membership.role == "owner" and not access.can("owners.manage"):
        raise ActionError(_refusal(access, "owners.manage", "Only owners can remove an owner."), status=403)
    _remove(actor, access.workspace, membership, "member.remove")


def leave_workspace(actor: Actor, access: Access) -> None:
    _remove(actor, access.workspace, access.membership, "member.leave")


# Invitations ----------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_invitation(actor: Actor, access: Access, role: str, email: str = "") -> tuple[Invitation, str]:
    """Create an invitation; returns it and its one-time token (the link's secret)."""
    _require(access, "members.manage", "invite members")
    if role not in ROLES:
        raise ActionError(f"Unknown role '{role}'; use one of {', '.join(ROLES)}.", field="role")
    if role == "owner" and not access.can("owners.manage"):
        raise ActionError(_refusal(access, "owners.manage", "Only owners can invite owners."), status=403)
    email = (email or "").strip().lower()
    if email and Membership.objects.filter(workspace=access.workspace, user__email__iexact=email).exists():
        raise ActionError(f"{email} is already a member of this workspace.", status=409, field="email")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            workspace=access.workspace,
            email=email,
            role=role,
            token_hash=_token_hash(token),
            created_by=actor.user,
            expires_at=timezone.now() + dt.timedelta(days=settings.PODIUM_INVITATION_DAYS),
        )
        record(actor, access.workspace, "invitation.create", invitation, email=email, role=role)
        events.publish(access.workspace.pk, "invitation.created", {"id": invitation.pk})
        if email:
            from workers.tasks import send_invitation_email

            transaction.on_commit(lambda: send_invitation_email.delay(invitation.pk, token))
    return invitation, token


def revoke_invitation(actor: Actor, access: Access, invitation: Invitation) -> Invitation:
    _require(access, "members.manage", "revoke invitations")
    if invitation.status != "pending":
        raise ActionError(f"This invitation is already {invitation.status}.", status=409)
    with transaction.atomic():
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record(actor, access.workspace, "invitation.revoke", invitation)
        events.publish(access.workspace.pk, "invitation.revoked", {"id": invitation.pk})
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    return Invitation.objects.select_related("workspace").filter(token_hash=_token_hash(token)).first()


def accept_invitation(actor: Actor, token: str) -> Membership:
    if actor.user is None or actor.api_key is not None:
        raise ActionError("Sign in to accept an invitation.", status=403)
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().select_related("workspace")
            .filter(token_hash=_token_hash(token)).first()
        )
        if invitation is None:
            raise ActionError("This invitation link is not valid. Ask for a new one.", status=404)
        if invitation.status != "pending":
            raise ActionError(f"This invitation is {invitation.status}. Ask for a new one.", status=409)
        workspace = invitation.workspace
        if Membership.objects.filter(workspace=workspace, user=actor.user).exists():
            raise ActionError(f"You are already a member of {workspace.name}.", status=409)
        membership = Membership.objects.create(workspace=workspace, user=actor.user, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = actor.user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        record(actor, workspace, "member.join", membership, user=actor.user.username, role=invitation.role)
        events.publish(
            workspace.pk,
            "member.added",
            {"user": actor.user.username, "role": invitation.role},
        )
    return membership


# API keys -------------------------------------------------------------------


def create_api_key(
    actor: Actor,
    access: Access,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it and its secret, which is never stored or shown again."""
    if not (access.can("keys.manage") or access.can("keys.create")):
        raise ActionError(f"Your role ({access.role}) does not allow you to create API keys.", status=403)
    name = (name or "").strip()
    if not name:
        raise ActionError("Give the key a name that says where it is used.", field="name")
    if len(name) > 80:
        raise ActionError("Key names are at most 80 characters.", field="name")
    scopes = sorted(set(scopes or []))
    if not scopes:
        raise ActionError(f"Choose at least one scope: {', '.join(KEY_SCOPES)}.", field="scopes")
    unknown = [s for s in scopes if s not in KEY_SCOPES]
    if unknown:
        raise ActionError(f"Unknown scope {unknown[0]!r}; use {', '.join(KEY_SCOPES)}.", field="scopes")
    allowed = set(scopes_allowed_for_role(access.role))
    if access.key_scopes is not None:
        allowed &= set(access.key_scopes)
    beyond = [s for s in scopes if s not in allowed]
    if beyond:
        raise ActionError(
            f"A {access.role} cannot create a key with the '{beyond[0]}' scope; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}.",
            status=403,
            field="scopes",
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ActionError("The expiry must be in the future.", field="expires_at")
    secret = keys.generate()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            workspace=access.workspace,
            name=name,
            prefix=keys.display_prefix(secret),
            key_hash=keys.digest(secret),
            scopes=scopes,
            created_by=access.membership.user,
            expires_at=expires_at,
        )
        record(actor, access.workspace, "key.create", api_key, scopes=scopes)
        events.publish(access.workspace.pk, "key.created", {"id": api_key.pk})
    return api_key, secret


def revoke_api_key(actor: Actor, access: Access, api_key: ApiKey) -> ApiKey:
    own = api_key.created_by_id == access.membership.user_id
    if not (access.can("keys.manage") or (own and access.can("keys.create"))):
        raise ActionError("Only admins can revoke other members' keys.", status=403)
    if api_key.revoked_at:
        return api_key
    with transaction.atomic():
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        record(actor, access.workspace, "key.revoke", api_key)
        key_cache.announce()
        events.publish(access.workspace.pk, "key.revoked", {"id": api_key.pk})
    return api_key
