"""REST API for workspaces, members, invitations, API keys and the audit log.

Views are thin: resolve the caller's :class:`Access` (404 for a workspace
that is not theirs), check the permission declared in ``perms`` for the
method, parse input with a serializer, call one action, serialise the result.
``perms`` is also what the tenancy test matrix reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import NUL_REFUSED, LimitOffsetPagination, json_body_errors
from webapp.workspaces import actions
from webapp.workspaces import serializers as s
from webapp.workspaces.access import Access, actor_from_request, scoped, workspace_for, workspaces_of
from webapp.workspaces.models import ApiKey, AuditEvent, Invitation, Membership
from webapp.workspaces.scopes import KEY_SCOPE_DESCRIPTIONS, KEY_SCOPES, PERMISSIONS, ROLE_DESCRIPTIONS, ROLES

WRONG_WORKSPACE = (
    "This API key belongs to another workspace. Use a key created in the workspace named in the URL."
)


class WorkspaceAPIView(APIView):
    """Base for every ``/api/v1/workspaces/{slug}/...`` endpoint."""

    perms: ClassVar[dict[str, str]] = {}
    # Statuses a method answers besides those core.openapi documents for every route (409 conflicts).
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {}
    access: Access

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if any("\x00" in str(value) for value in kwargs.values()):
            raise Http404  # no name holds a NUL (and PostgreSQL cannot compare one)
        api_key: ApiKey | None = getattr(request._request, "api_key", None)
        if api_key is not None and api_key.workspace.slug != kwargs["slug"]:
            raise exceptions.AuthenticationFailed(WRONG_WORKSPACE, code="wrong_workspace")
        self.access = workspace_for(actor_from_request(request._request), kwargs["slug"])
        perm = self.perms.get(request.method or "GET")
        if perm is not None and not self.access.can(perm):
            raise exceptions.PermissionDenied(self.access.why_not(perm))

    @property
    def actor(self) -> Any:
        return actor_from_request(self.request._request)


def _roles_for(user: Any) -> dict[int, str]:
    return dict(Membership.objects.filter(user=user).values_list("workspace_id", "role"))


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer, summary="Who am I", tags=["account"])
    def get(self, request: Request) -> Response:
        api_key: ApiKey | None = getattr(request._request, "api_key", None)
        workspaces: Any = workspaces_of(request.user)  # type: ignore[arg-type]
        if api_key is not None:
            workspaces = workspaces.filter(pk=api_key.workspace_id)
        context = {"roles": _roles_for(request.user)}
        return Response({
            "username": request.user.username,
            "email": request.user.email,  # type: ignore[union-attr]
            "workspaces": s.WorkspaceSerializer(workspaces, many=True, context=context).data,
            "api_key": s.ApiKeySerializer(api_key).data if api_key else None,
        })


class RolesView(APIView):
    """Roles, their permissions and the API key scopes, straight from ``scopes.py``."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict}, summary="Roles, permissions and key scopes", tags=["account"])
    def get(self, request: Request) -> Response:
        return Response({
            "permissions": PERMISSIONS,
            "roles": {r: {"description": ROLE_DESCRIPTIONS[r], "permissions": sorted(p)} for r, p in ROLES.items()},
            "key_scopes": {
                k: {"description": KEY_SCOPE_DESCRIPTIONS[k], "permissions": sorted(p)} for k, p in KEY_SCOPES.items()
            },
        })


class WorkspaceListView(APIView):
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # the URL name is taken

    @extend_schema(responses=s.WorkspaceSerializer(many=True), summary="List my workspaces", tags=["workspaces"])
    def get(self, request: Request) -> Response:
        api_key: ApiKey | None = getattr(request._request, "api_key", None)
        qs: Any = workspaces_of(request.user)  # type: ignore[arg-type]
        if api_key is not None:
            qs = qs.filter(pk=api_key.workspace_id)
        return Response(s.WorkspaceSerializer(qs, many=True, context={"roles": _roles_for(request.user)}).data)

    @extend_schema(request=s.WorkspaceCreateSerializer, responses={201: s.WorkspaceSerializer},
                   summary="Create a workspace (you become its owner)", tags=["workspaces"])
    def post(self, request: Request) -> Response:
        data = _valid(s.WorkspaceCreateSerializer, request)
        workspace = actions.create_workspace(self_actor(request), data["name"], data.get("slug") or None)
        return Response(s.WorkspaceSerializer(workspace, context={"roles": {workspace.pk: "owner"}}).data,
                        status=status.HTTP_201_CREATED)


def self_actor(request: Request) -> Any:
    return actor_from_request(request._request)


def _valid(serializer_class: Any, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    type_errors = json_body_errors(serializer, request.data)
    if type_errors:
        raise exceptions.ValidationError(type_errors)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class WorkspaceDetailView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {
        "GET": "workspace.read", "PATCH": "workspace.update", "DELETE": "workspace.delete",
    }
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"PATCH": (409,)}  # no outbound network here

    def _out(self) -> Response:
        ws = self.access.workspace
        return Response(s.WorkspaceSerializer(ws, context={"roles": {ws.pk: self.access.role}}).data)

    @extend_schema(responses=s.WorkspaceSerializer, summary="Get a workspace", tags=["workspaces"])
    def get(self, request: Request, slug: str) -> Response:
        return self._out()

    @extend_schema(request=s.WorkspaceUpdateSerializer, responses=s.WorkspaceSerializer,
                   summary="Rename a workspace or change its network policy", tags=["workspaces"])
    def patch(self, request: Request, slug: str) -> Response:
        data = _valid(s.WorkspaceUpdateSerializer, request)
        if "name" in data:
            actions.rename_workspace(self.actor, self.access, data["name"])
        if "allow_outbound_network" in data:
            actions.set_outbound_network(self.actor, self.access, data["allow_outbound_network"])
        return self._out()

    @extend_schema(request=s.WorkspaceDeleteSerializer, responses={204: None},
                   summary="Delete a workspace and all its data (owners only)", tags=["workspaces"])
    def delete(self, request: Request, slug: str) -> Response:
        data = _valid(s.WorkspaceDeleteSerializer, request)
        actions.delete_workspace(self.actor, self.access, data["confirm"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "workspace.read"}

    @extend_schema(responses=s.MemberSerializer(many=True), summary="List members", tags=["members"])
    def get(self, request: Request, slug: str) -> Response:
        members = Membership.objects.filter(workspace=self.access.workspace).select_related("user")
        return Response(s.MemberSerializer(members, many=True).data)


class MemberDetailView(WorkspaceAPIView):
    # DELETE is checked in the action: removing someone else needs members.manage,
    # removing yourself (leaving) needs nothing.
    perms: ClassVar[dict[str, str]] = {"GET": "workspace.read", "PATCH": "members.manage"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"PATCH": (409,), "DELETE": (409,)}  # the last owner

    def _member(self, username: str) -> Membership:
        return scoped(Membership.objects.select_related("user"), self.access, user__username=username)

    @extend_schema(responses=s.MemberSerializer, summary="Get a member", tags=["members"])
    def get(self, request: Request, slug: str, username: str) -> Response:
        return Response(s.MemberSerializer(self._member(username)).data)

    @extend_schema(request=s.MemberUpdateSerializer, responses=s.MemberSerializer,
                   summary="Change a member's role", tags=["members"])
    def patch(self, request: Request, slug: str, username: str) -> Response:
        member = self._member(username)
        data = _valid(s.MemberUpdateSerializer, request)
        member = actions.change_role(self.actor, self.access, member, data["role"])
        return Response(s.MemberSerializer(member).data)

    @extend_schema(responses={204: None}, summary="Remove a member, or leave (your own username)",
                   tags=["members"])
    def delete(self, request: Request, slug: str, username: str) -> Response:
        actions.remove_member(self.actor, self.access, self._member(username))
        return Response(status=status.HTTP_204_NO_CONTENT)


def invitation_url(token: str) -> str:
    return f"{settings.PODIUM_URL}/invitations/{token}"


class InvitationListView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "members.manage", "POST": "members.manage"}

    @extend_schema(responses=s.InvitationSerializer(many=True), summary="List invitations", tags=["members"])
    def get(self, request: Request, slug: str) -> Response:
        qs = Invitation.objects.filter(workspace=self.access.workspace).select_related("created_by")
        return Response(s.InvitationSerializer(qs, many=True).data)

    @extend_schema(request=s.InvitationCreateSerializer, responses={201: s.InvitationCreatedSerializer},
                   summary="Invite someone (by link, and by email when given)", tags=["members"])
    def post(self, request: Request, slug: str) -> Response:
        data = _valid(s.InvitationCreateSerializer, request)
        invitation, token = actions.create_invitation(self.actor, self.access, data["role"], data.get("email", ""))
        body = dict(s.InvitationSerializer(invitation).data)
        body["url"] = invitation_url(token)
        return Response(body, status=status.HTTP_201_CREATED)


class InvitationDetailView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "members.manage", "DELETE": "members.manage"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"DELETE": (409,)}  # already accepted or revoked

    @extend_schema(responses=s.InvitationSerializer, summary="Get an invitation", tags=["members"])
    def get(self, request: Request, slug: str, pk: int) -> Response:
        return Response(s.InvitationSerializer(scoped(Invitation.objects.all(), self.access, pk=pk)).data)

    @extend_schema(responses={204: None}, summary="Revoke an invitation", tags=["members"])
    def delete(self, request: Request, slug: str, pk: int) -> Response:
        actions.revoke_invitation(self.actor, self.access, scoped(Invitation.objects.all(), self.access, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(APIView):
    # 404: no invitation has this token; 409: it expired or was used, or the caller is already a member.
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (404, 409)}

    @extend_schema(request=s.InvitationAcceptSerializer, responses={200: s.WorkspaceSerializer},
                   summary="Accept an invitation (signed-in user)", tags=["members"])
    def post(self, request: Request) -> Response:
        data = _valid(s.InvitationAcceptSerializer, request)
        membership = actions.accept_invitation(self_actor(request), data["token"])
        ws = membership.workspace
        return Response(s.WorkspaceSerializer(ws, context={"roles": {ws.pk: membership.role}}).data)


class _KeyViewBase(WorkspaceAPIView):
    def _visible(self) -> QuerySet[ApiKey]:
        """Admins see every key; other members see the keys they created."""
        qs = ApiKey.objects.filter(workspace=self.access.workspace).select_related("created_by")
        if not self.access.can("keys.manage"):
            qs = qs.filter(created_by=self.access.membership.user)
        return qs


class ApiKeyListView(_KeyViewBase):
    perms: ClassVar[dict[str, str]] = {"GET": "keys.read", "POST": "keys.create"}

    @extend_schema(responses=s.ApiKeySerializer(many=True), summary="List API keys", tags=["keys"])
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.ApiKeySerializer(self._visible(), many=True).data)

    @extend_schema(request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer},
                   summary="Create an API key (the secret is in this response only)", tags=["keys"])
    def post(self, request: Request, slug: str) -> Response:
        data = _valid(s.ApiKeyCreateSerializer, request)
        api_key, secret = actions.create_api_key(
            self.actor, self.access, data["name"], data["scopes"], data.get("expires_at")
        )
        body = dict(s.ApiKeySerializer(api_key).data)
        body["key"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(_KeyViewBase):
    perms: ClassVar[dict[str, str]] = {"GET": "keys.read", "DELETE": "keys.create"}

    @extend_schema(responses=s.ApiKeySerializer, summary="Get an API key", tags=["keys"])
    def get(self, request: Request, slug: str, pk: int) -> Response:
        return Response(s.ApiKeySerializer(scoped(self._visible(), self.access, pk=pk)).data)

    @extend_schema(responses={204: None}, summary="Revoke an API key (takes effect at once)", tags=["keys"])
    def delete(self, request: Request, slug: str, pk: int) -> Response:
        actions.revoke_api_key(self.actor, self.access, scoped(self._visible(), self.access, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


def audit_queryset(access: Access, params: Any) -> QuerySet[AuditEvent]:
    """The workspace's audit events filtered by the query parameters the UI and API share."""
    qs = AuditEvent.objects.filter(workspace=access.workspace)
    for name in ("action", "actor", "object_type"):
        if "\x00" in params.get(name, ""):  # PostgreSQL cannot compare text with a NUL in it
            raise actions.ActionError(NUL_REFUSED, field=name)
    if params.get("action"):
        qs = qs.filter(action__startswith=params["action"])
    if params.get("actor"):
        qs = qs.filter(actor_label__icontains=params["actor"])
    if params.get("object_type"):
        qs = qs.filter(object_type=params["object_type"])
    for name, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
        if name in params:  # an empty one too: it is not a date-time
            qs = qs.filter(**{lookup: _date_time(params[name], name)})
    return qs


def _date_time(raw: str, name: str) -> dt.datetime:
    """``raw`` in UTC (PostgreSQL takes offsets up to 15:59 only); a 400 naming ``name`` if it is no date-time."""
    try:
        # RFC 3339 lets the 'T' and 'Z' be lowercase; Django's parser wants them uppercase.
        when = parse_datetime(raw.upper())
    except ValueError:  # well formed but not a real moment, e.g. month 13
        when = None
    if when is None:
        raise actions.ActionError(f"'{name}' must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z.", field=name)
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    try:
        return when.astimezone(dt.UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC: as far as a date-time goes
        return dt.datetime.min.replace(tzinfo=dt.UTC) if when.year == 1 else dt.datetime.max.replace(tzinfo=dt.UTC)


class AuditLogView(WorkspaceAPIView, generics.ListAPIView[AuditEvent]):
    perms: ClassVar[dict[str, str]] = {"GET": "audit.read"}
    serializer_class = s.AuditEventSerializer
    pagination_class = LimitOffsetPagination

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_queryset(self.access, self.request.query_params)

    @extend_schema(
        parameters=[
            OpenApiParameter("action", str, description="Action prefix, e.g. 'member.' or 'key.create'"),
            OpenApiParameter("actor", str, description="Part of the actor's name"),
            OpenApiParameter("object_type", str,
                             description="workspace, membership, invitation, apikey, model, modelversion"),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601 date-time, inclusive"),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="ISO 8601 date-time, exclusive"),
        ],
        summary="Read the audit log (newest first, paginated)",
        tags=["audit"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
