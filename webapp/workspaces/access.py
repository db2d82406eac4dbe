"""The one place that decides who may do what in a workspace.

Terms:
- :class:`Actor`: who is acting (a signed-in user, or the user behind an API
  key) and from where; actions record it in the audit log.
- :class:`Access`: an actor's standing in one workspace: membership role,
  and for API keys the key's scopes. ``access.can(perm)`` is the check views,
  the API and websockets all use.

Lookups of tenant-owned objects go through :func:`workspace_for` and
:func:`scoped`, which raise ``Http404`` for a workspace the actor does not
belong to, so another tenant's object answers exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404

from webapp.workspaces.models import ApiKey, Membership, Workspace
from webapp.workspaces.scopes import KEY_SCOPES, PERMISSIONS, ROLES

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Actor:
    user: User | None
    api_key: ApiKey | None = None
    ip: str | None = None
    user_agent: str = ""
    name: str = ""  # who acts when no person does (``Actor.podium()``)

    @property
    def label(self) -> str:
        if self.user is None:
            return self.name or "system"
        if self.api_key is not None:
            return f"{self.user.username} (key {self.api_key.prefix}…)"
        return str(self.user.username)

    @classmethod
    def system(cls) -> Actor:
        return cls(user=None)

    @classmethod
    def podium(cls, what: str = "") -> Actor:
        """Podium itself (the reconciler, say): the audit log names it "Podium"."""
        return cls(user=None, name="Podium", user_agent=what)


def actor_from_request(request: HttpRequest) -> Actor:
    user = request.user if request.user.is_authenticated else None
    return Actor(
        user=user,
        api_key=getattr(request, "api_key", None),
        ip=request.META.get("REMOTE_ADDR") or None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )


@dataclass(frozen=True)
class Access:
    workspace: Workspace
    membership: Membership
    key_scopes: frozenset[str] | None = None
    perms: frozenset[str] = field(default=frozenset())

    @classmethod
    def build(cls, workspace: Workspace, membership: Membership, api_key: ApiKey | None) -> Access:
        perms = ROLES[membership.role]
        scopes = None
        if api_key is not None:
            scopes = frozenset(api_key.scopes)
            granted: set[str] = set()
            for scope in scopes:
                granted |= KEY_SCOPES.get(scope, frozenset())
            perms = perms & frozenset(granted)
        return cls(workspace=workspace, membership=membership, key_scopes=scopes, perms=perms)

    @property
    def role(self) -> str:
        return self.membership.role

    def can(self, perm: str) -> bool:
        assert perm in PERMISSIONS, f"unknown permission {perm!r}"
        return perm in self.perms

    def why_not(self, perm: str) -> str:
        """Why ``perm`` is refused, naming what would allow it: the caller's role, or, when the
        role allows it, the key scopes that carry it (some permissions no key scope carries:
        deleting the workspace and managing owners are done signed in, never with a key)."""
        what = PERMISSIONS[perm].rstrip(".").lower()
        if perm not in ROLES[self.role] or self.key_scopes is None:
            return f"Your role ({self.role}) does not allow this: {what}."
        scopes = [scope for scope, perms in KEY_SCOPES.items() if perm in perms]
        held = ", ".join(sorted(self.key_scopes)) or "none"
        if not scopes:
            return (f"No API key can do this: {what}. Sign in to Podium as a member whose role allows it "
                    f"(this key's scopes: {held}).")
        wanted = " or ".join(f"'{scope}'" for scope in scopes)
        return f"This API key's scopes ({held}) do not allow this: {what}. Use a key with the {wanted} scope."


def workspace_for(actor: Actor, slug: str) -> Access:
    """The actor's access to workspace ``slug``; 404 when it is missing or not theirs.

    An API key only ever opens its own workspace; the API layer turns a
    mismatch into a 401 before this is called.
    """
    if actor.user is None:
        raise Http404
    membership = (
        Membership.objects.select_related("workspace")
        .filter(workspace__slug=slug, user=actor.user)
        .first()
    )
    if membership is None:
        raise Http404
    if actor.api_key is not None and actor.api_key.workspace_id != membership.workspace_id:
        raise Http404
    return Access.build(membership.workspace, membership, actor.api_key)


def scoped(queryset: QuerySet[M], access: Access, **lookup: Any) -> M:
    """Fetch one object of ``access.workspace``; 404 for anything else."""
    obj = queryset.filter(workspace=access.workspace, **lookup).first()
    if obj is None:
        raise Http404
    return obj


def workspaces_of(user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("name")
