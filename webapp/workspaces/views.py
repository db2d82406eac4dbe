"""Workspace pages: the list, the overview, members, API keys, audit log, settings, invitations.

Views are thin: :func:`workspace_page` resolves the caller's :class:`Access`
(the 404 page for a workspace that is missing or not theirs, so the two are
indistinguishable), checks the permission declared for the HTTP method (the
403 page otherwise), and hands the view the access. Views parse a form, call
one action from :mod:`webapp.workspaces.actions`, and show an
:class:`ActionError` as a form error or a message, never as a 500.

Terms:
- *fragment*: a part of a page that the events websocket client re-fetches
  with ``?fragment=<name>`` and swaps in place (see ``static/src/live.ts``).
  Each page declares its fragments; the name maps to a partial template.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from webapp.accounts.views import safe_next
from webapp.serving import quotas
from webapp.workspaces import actions
from webapp.workspaces.access import Access, actor_from_request, scoped, workspace_for, workspaces_of
from webapp.workspaces.actions import ActionError
from webapp.workspaces.api import audit_queryset, invitation_url
from webapp.workspaces.forms import (
    ApiKeyForm,
    AuditFilterForm,
    DeleteForm,
    InviteForm,
    RenameForm,
    WorkspaceCreateForm,
    add_action_error,
)
from webapp.workspaces.models import ApiKey, AuditEvent, Invitation, Membership
from webapp.workspaces.scopes import KEY_SCOPE_DESCRIPTIONS, ROLE_DESCRIPTIONS, ROLE_ORDER, scopes_allowed_for_role

if TYPE_CHECKING:
    from django.contrib.auth.models import User

LAST_WORKSPACE = "podium.last_workspace"
AUDIT_PAGE_SIZE = 50
RECENT_ACTIVITY = 8

P = ParamSpec("P")
PageView = Callable[Concatenate[HttpRequest, Access, P], HttpResponse]


def workspace_page(**perms: str) -> Callable[[PageView[P]], Callable[..., HttpResponse]]:
    """Decorate a page of ``/w/<slug>/``: ``perms`` maps each allowed HTTP method to its permission.

    Anonymous visitors go to sign in; non-members get the 404 page (the same
    bytes as for a missing workspace); members without the permission get
    the 403 page. The wrapped view receives the :class:`Access`. The mapping
    is kept on the view as ``podium_perms`` for the tenancy test matrix.
    """

    def decorate(view: PageView[P]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            access = workspace_for(actor_from_request(request), slug)
            perm = perms.get(request.method or "GET")
            if perm is None:
                return HttpResponseNotAllowed(list(perms))
            if not access.can(perm):
                raise PermissionDenied
            if request.method == "GET" and request.session.get(LAST_WORKSPACE) != slug:
                request.session[LAST_WORKSPACE] = slug
            return view(request, access, *args, **kwargs)

        wrapped = login_required(wrapper)
        wrapped.podium_perms = dict(perms)  # type: ignore[attr-defined]
        return wrapped

    return decorate


def page(
    request: HttpRequest,
    access: Access,
    template: str,
    context: dict[str, Any],
    *,
    tab: str,
    fragments: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render a workspace page, or only the fragment named by ``?fragment=``."""
    context = {
        "access": access,
        "workspace": access.workspace,
        "role": access.role,
        "can": access.perms,
        "tab": tab,
        **context,
    }
    name = request.GET.get("fragment")
    if name and fragments and name in fragments:
        response = render(request, fragments[name], context)
    else:
        response = render(request, template, context, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _back_to(request: HttpRequest, name: str, access: Access) -> HttpResponse:
    """Back to the page the form was on (its ``next``), else to the workspace page ``name``."""
    if request.POST.get("next"):
        return redirect(safe_next(request))
    return redirect(name, access.workspace.slug)


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that ``login_required`` let through."""
    assert request.user.is_authenticated
    return cast("User", request.user)


def _forget_workspace(request: HttpRequest, slug: str) -> None:
    if request.session.get(LAST_WORKSPACE) == slug:
        del request.session[LAST_WORKSPACE]


# Outside a workspace ---------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The last workspace this session used, else the list (or the first-workspace page)."""
    user = signed_in_user(request)
    slug = request.session.get(LAST_WORKSPACE)
    if slug and Membership.objects.filter(workspace__slug=slug, user=user).exists():
        return redirect("ws-overview", slug)
    if not workspaces_of(user).exists():
        return redirect("workspace-new")
    return redirect("workspaces")


@login_required
@require_GET
def workspace_list(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=signed_in_user(request))
        .select_related("workspace")
        .annotate(member_count=Count("workspace__memberships"))
        .order_by("workspace__name")
    )
    return render(request, "workspaces/list.html", {"memberships": memberships})


@login_required
@require_http_methods(["GET", "POST"])
def workspace_new(request: HttpRequest) -> HttpResponse:
    form = WorkspaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = actions.create_workspace(
                actor_from_request(request), form.cleaned_data["name"], form.cleaned_data["slug"] or None
            )
        except ActionError as error:
            add_action_error(form, error)
        else:
            messages.success(request, f"Created {workspace.name}. You are its owner.")
            return redirect("ws-overview", workspace.slug)
    first = not workspaces_of(signed_in_user(request)).exists()
    return render(request, "workspaces/new.html", {"form": form, "first": first},
                  status=400 if form.errors else 200)


# Overview ----------------------------------------------------------------------


def _visible_keys(access: Access) -> QuerySet[ApiKey]:
    """Admins see every key; other members see the keys they created (as the API does)."""
    qs = ApiKey.objects.filter(workspace=access.workspace)
    if not access.can("keys.manage"):
        qs = qs.filter(created_by=access.membership.user)
    return qs


def _overview_stats(access: Access) -> dict[str, Any]:
    now = timezone.now()
    ws = access.workspace
    stats: dict[str, Any] = {"member_count": Membership.objects.filter(workspace=ws).count()}
    if access.can("keys.read"):
        stats["key_count"] = _visible_keys(access).filter(revoked_at=None).exclude(expires_at__lte=now).count()
    if access.can("members.manage"):
        stats["pending_count"] = Invitation.objects.filter(
            workspace=ws, accepted_at=None, revoked_at=None, expires_at__gt=now
        ).count()
    if access.can("audit.read"):
        stats["recent"] = list(AuditEvent.objects.filter(workspace=ws)[:RECENT_ACTIVITY])
    return stats


@workspace_page(GET="workspace.read")
def overview(request: HttpRequest, access: Access) -> HttpResponse:
    context = {
        **_overview_stats(access),
        "role_description": ROLE_DESCRIPTIONS[access.role],
    }
    if access.can("models.read"):
        from webapp.serving import views as serving_views  # serving's pages build on this module's helpers

        context.update(serving_views.overview(access))
    return page(request, access, "workspaces/overview.html", context, tab="overview",
                fragments={"stats": "workspaces/_overview_stats.html"})


# Members and invitations --------------------------------------------------------


def _invitable_roles(access: Access) -> list[str]:
    return [r for r in ROLE_ORDER if r != "owner" or access.can("owners.manage")]


def _members_context(access: Access, invite_form: InviteForm | None = None) -> dict[str, Any]:
    members = list(Membership.objects.filter(workspace=access.workspace).select_related("user"))
    can_manage = access.can("members.manage")
    context: dict[str, Any] = {
        "members": members,
        "owner_count": sum(1 for m in members if m.role == "owner"),
        "assignable_roles": _invitable_roles(access) if can_manage else [],
        "role_descriptions": ROLE_DESCRIPTIONS,
    }
    if can_manage:
        context["invitations"] = (
            Invitation.objects.filter(
                workspace=access.workspace, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
            ).select_related("created_by")
        )
        context["invite_form"] = invite_form or InviteForm(roles=_invitable_roles(access))
    return context


MEMBER_FRAGMENTS = {"members": "workspaces/_members_table.html", "invitations": "workspaces/_invitations.html"}


@workspace_page(GET="workspace.read", POST="members.manage")
def members(request: HttpRequest, access: Access) -> HttpResponse:
    """The member list; POST creates an invitation and shows its link once."""
    form = InviteForm(request.POST or None, roles=_invitable_roles(access))
    extra: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                invitation, token = actions.create_invitation(
                    actor_from_request(request), access, form.cleaned_data["role"], form.cleaned_data["email"]
                )
            except ActionError as error:
                add_action_error(form, error)
                status = error.status
            else:
                extra = {"new_invitation": invitation, "invitation_url": invitation_url(token)}
                form = InviteForm(roles=_invitable_roles(access))
        else:
            status = 400
    context = {**_members_context(access, form), **extra}
    fragments = MEMBER_FRAGMENTS if access.can("members.manage") else {"members": MEMBER_FRAGMENTS["members"]}
    return page(request, access, "workspaces/members.html", context, tab="members",
                fragments=fragments, status=status)


def _member(access: Access, username: str) -> Membership:
    return scoped(Membership.objects.select_related("user"), access, user__username=username)


@workspace_page(POST="members.manage")
def member_role(request: HttpRequest, access: Access, username: str) -> HttpResponse:
    membership = _member(access, username)
    try:
        actions.change_role(actor_from_request(request), access, membership, request.POST.get("role", ""))
    except ActionError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{username} is now {request.POST['role']}.")
    return redirect("ws-members", access.workspace.slug)


@workspace_page(POST="members.manage")
def member_remove(request: HttpRequest, access: Access, username: str) -> HttpResponse:
    membership = _member(access, username)
    if membership.user_id == access.membership.user_id:
        return leave(request, access.workspace.slug)
    try:
        actions.remove_member(actor_from_request(request), access, membership)
    except ActionError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Removed {username} from {access.workspace.name}; their API keys are revoked.")
    return redirect("ws-members", access.workspace.slug)


@workspace_page(POST="workspace.read")
def leave(request: HttpRequest, access: Access) -> HttpResponse:
    try:
        actions.leave_workspace(actor_from_request(request), access)
    except ActionError as error:
        messages.error(request, error.message)
        return _back_to(request, "ws-members", access)
    _forget_workspace(request, access.workspace.slug)
    messages.success(request, f"You left {access.workspace.name}.")
    return redirect("workspaces")


@workspace_page(POST="members.manage")
def invitation_revoke(request: HttpRequest, access: Access, pk: int) -> HttpResponse:
    invitation = scoped(Invitation.objects.all(), access, pk=pk)
    try:
        actions.revoke_invitation(actor_from_request(request), access, invitation)
    except ActionError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Invitation revoked; its link no longer works.")
    return redirect("ws-members", access.workspace.slug)


# API keys ---------------------------------------------------------------------------


def _key_form(access: Access, data: Any = None) -> ApiKeyForm:
    return ApiKeyForm(data, scopes=scopes_allowed_for_role(access.role))


@workspace_page(GET="keys.read", POST="keys.create")
def keys(request: HttpRequest, access: Access) -> HttpResponse:
    """The keys this member may see; POST creates one and shows its secret this once."""
    form = _key_form(access, request.POST if request.method == "POST" else None)
    extra: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                api_key, secret = actions.create_api_key(
                    actor_from_request(request), access, form.cleaned_data["name"],
                    form.cleaned_data["scopes"], form.expires_at(),
                )
            except ActionError as error:
                add_action_error(form, error)
                status = error.status
            else:
                extra = {"new_key": api_key, "secret": secret}
                form = _key_form(access)
        else:
            status = 400
    context = {
        "keys": _visible_keys(access).select_related("created_by"),
        "form": form,
        "scope_descriptions": KEY_SCOPE_DESCRIPTIONS,
        "sees_all": access.can("keys.manage"),
        **extra,
    }
    return page(request, access, "workspaces/keys.html", context, tab="keys",
                fragments={"keys": "workspaces/_keys_table.html"}, status=status)


@workspace_page(POST="keys.create")
def key_revoke(request: HttpRequest, access: Access, pk: int) -> HttpResponse:
    api_key = scoped(_visible_keys(access), access, pk=pk)
    try:
        actions.revoke_api_key(actor_from_request(request), access, api_key)
    except ActionError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Revoked “{api_key.name}”. Requests with it now get 401.")
    return redirect("ws-keys", access.workspace.slug)


# Audit log -----------------------------------------------------------------------------


@workspace_page(GET="audit.read")
def audit(request: HttpRequest, access: Access) -> HttpResponse:
    known = list(
        AuditEvent.objects.filter(workspace=access.workspace).order_by().values_list("action", flat=True).distinct()
    )
    data = {k: v for k, v in request.GET.items() if k != "page"}
    form = AuditFilterForm(data, actions=known)
    events = AuditEvent.objects.none()
    if form.is_valid():
        try:
            events = audit_queryset(access, form.params())
        except ActionError as error:
            add_action_error(form, error)
    paginator = Paginator(events, AUDIT_PAGE_SIZE)
    page_obj = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page_obj": page_obj,
        "filtered": any(data.values()),
        "query": query.urlencode(),
    }
    return page(request, access, "workspaces/audit.html", context, tab="audit")


# Settings ---------------------------------------------------------------------------


def _executor_facts() -> dict[str, Any]:
    from sandbox import get_executor

    executor = get_executor()
    return {"executor_name": executor.name, "executor_supports_outbound": executor.supports_outbound_network}


def _settings_page(request: HttpRequest, access: Access, rename: RenameForm | None = None,
                   delete: DeleteForm | None = None, status: int = 200) -> HttpResponse:
    context = {
        "rename_form": rename or RenameForm(initial={"name": access.workspace.name}),
        "delete_form": delete or DeleteForm(),
        "owner_count": Membership.objects.filter(workspace=access.workspace, role="owner").count(),
        "quotas": quotas.report(access.workspace),
        **_executor_facts(),
    }
    return page(request, access, "workspaces/settings.html", context, tab="settings", status=status)


@workspace_page(GET="workspace.read", POST="workspace.update")
def settings_page(request: HttpRequest, access: Access) -> HttpResponse:
    """Workspace settings; POST renames, or with ``action=network`` sets the network policy."""
    if request.method == "GET":
        return _settings_page(request, access)
    if request.POST.get("action") == "network":
        allow = request.POST.get("allow_outbound_network") == "on"
        try:
            actions.set_outbound_network(actor_from_request(request), access, allow)
        except ActionError as error:
            messages.error(request, error.message)
            return _settings_page(request, access, status=error.status)
        messages.success(request, "Sandboxes of this workspace may now reach the internet." if allow
                         else "Sandboxes of this workspace have no network again.")
        return redirect("ws-settings", access.workspace.slug)
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            actions.rename_workspace(actor_from_request(request), access, form.cleaned_data["name"])
        except ActionError as error:
            add_action_error(form, error)
        else:
            messages.success(request, f"Renamed the workspace to {access.workspace.name}.")
            return redirect("ws-settings", access.workspace.slug)
    return _settings_page(request, access, rename=form, status=400)


@workspace_page(POST="workspace.delete")
def workspace_delete(request: HttpRequest, access: Access) -> HttpResponse:
    form = DeleteForm(request.POST)
    if form.is_valid():
        try:
            actions.delete_workspace(actor_from_request(request), access, form.cleaned_data["confirm"])
        except ActionError as error:
            add_action_error(form, error)
        else:
            _forget_workspace(request, access.workspace.slug)
            messages.success(request, f"Deleted {access.workspace.name} and everything in it.")
            return redirect("workspaces")
    return _settings_page(request, access, delete=form, status=400)


# Accepting an invitation -------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Show an invitation's workspace and role; POST (signed in) accepts it.

    Anyone holding the link may see whom it invites to where: the token is
    the secret. Anonymous visitors are offered sign in / sign up, both of
    which come back here.
    """
    found = actions.invitation_for_token(token)
    if found is None:
        return render(request, "workspaces/invitation.html", {"invalid": True}, status=404)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        try:
            membership = actions.accept_invitation(actor_from_request(request), token)
        except ActionError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Welcome to {membership.workspace.name}. You joined as {membership.role}.")
            return redirect("ws-overview", membership.workspace.slug)
    already = request.user.is_authenticated and Membership.objects.filter(
        workspace=found.workspace, user=request.user
    ).exists()
    context = {
        "invitation": found,
        "already_member": already,
        "role_description": ROLE_DESCRIPTIONS[found.role],
    }
    return render(request, "workspaces/invitation.html", context)
