"""Request and response shapes of the workspace API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webapp.workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Workspace
from webapp.workspaces.scopes import KEY_SCOPES, role_choices


class WorkspaceSerializer(serializers.ModelSerializer[Workspace]):
    role = serializers.SerializerMethodField(help_text="Your role in this workspace.")

    class Meta:
        model = Workspace
        fields = ["slug", "name", "created_at", "role", "allow_outbound_network"]
        read_only_fields = fields

    def get_role(self, obj: Workspace) -> str | None:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(obj.pk)


class WorkspaceCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=80)
    slug = serializers.CharField(max_length=48, required=False, allow_blank=True,
                                 help_text="URL name; derived from the name when omitted.")


class WorkspaceUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=80, required=False)
    allow_outbound_network = serializers.BooleanField(
        required=False, help_text="Let this workspace's sandboxes reach the internet (never Podium's services)."
    )


class WorkspaceDeleteSerializer(serializers.Serializer[Any]):
    confirm = serializers.CharField(help_text="The workspace's URL name, to confirm deletion.")


class MemberSerializer(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "email", "role", "joined_at"]
        read_only_fields = fields


class MemberUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=role_choices())


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    email = serializers.SerializerMethodField(help_text="Where the invitation was sent; null for link-only.")
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "created_by", "created_at", "expires_at", "accepted_at"]
        read_only_fields = fields

    def get_email(self, obj: Invitation) -> str | None:
        return obj.email or None


class InvitationCreateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=role_choices())
    email = serializers.EmailField(required=False, allow_blank=True,
                                   help_text="When given, the invitation is also sent by email.")


class InvitationCreatedSerializer(InvitationSerializer):
    url = serializers.CharField(read_only=True, help_text="The invitation link. Shown once.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "url"]
        read_only_fields = fields


class InvitationAcceptSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(max_length=200)


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "status", "created_by", "created_at", "expires_at",
                  "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=80)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=list(KEY_SCOPES)), min_length=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown once; Podium keeps only its hash.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "object_type", "object_id", "object_repr", "data", "ip",
                  "user_agent"]
        read_only_fields = fields


class MeSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    email = serializers.EmailField()
    workspaces = WorkspaceSerializer(many=True)
    api_key = ApiKeySerializer(allow_null=True, help_text="The key this request used, if any.")
