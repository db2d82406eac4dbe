"""Request and response shapes of the model API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from webapp.core.api import INT_MAX
from webapp.serving.models import Alias, Invocation, Model, ModelVersion


def endpoint_url(model_name: str, number: int | None = None, alias: str | None = None) -> str:
    base = f"{settings.PODIUM_URL}/v1/models/{model_name}"
    if number is not None:
        return f"{base}/versions/{number}/predict"
    if alias and alias != "production":
        return f"{base}/aliases/{alias}/predict"
    return f"{base}/predict"


class StepSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "running", "done", "failed"])
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class VersionSerializer(serializers.ModelSerializer[ModelVersion]):
    steps = StepSerializer(many=True)
    endpoint = serializers.SerializerMethodField()
    resources = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["number", "status", "failed_step", "error", "steps", "flavor", "description", "requirements",
                  "resources", "replicas", "bundle_sha256", "bundle_size", "endpoint", "created_by", "created_at",
                  "ready_at"]
        read_only_fields = fields

    def get_endpoint(self, obj: ModelVersion) -> str:
        return endpoint_url(obj.model.name, obj.number)

    def get_resources(self, obj: ModelVersion) -> dict[str, float]:
        return {"cpu": obj.cpu, "memory_mib": obj.memory_mib, "gpus": obj.gpus}


class RouteSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(min_value=1, max_value=INT_MAX)
    weight = serializers.IntegerField(min_value=1, max_value=100)


class AliasSerializer(serializers.ModelSerializer[Alias]):
    routes = serializers.SerializerMethodField()
    endpoint = serializers.SerializerMethodField()

    class Meta:
        model = Alias
        fields = ["name", "routes", "endpoint", "updated_at"]
        read_only_fields = fields

    def get_routes(self, obj: Alias) -> list[dict[str, int]]:
        return sorted(({"version": r.version.number, "weight": r.weight} for r in obj.routes.all()),
                      key=lambda r: r["version"])

    def get_endpoint(self, obj: Alias) -> str:
        return endpoint_url(obj.model.name, alias=obj.name)


class ModelSerializer(serializers.ModelSerializer[Model]):
    aliases = AliasSerializer(many=True, read_only=True)
    latest_version = serializers.SerializerMethodField()
    endpoint = serializers.SerializerMethodField()

    class Meta:
        model = Model
        fields = ["name", "description", "endpoint", "aliases", "latest_version", "created_at"]
        read_only_fields = fields

    def get_latest_version(self, obj: Model) -> int | None:
        versions = list(obj.versions.all())
        return max((v.number for v in versions), default=None)

    def get_endpoint(self, obj: Model) -> str:
        return endpoint_url(obj.name)


class VersionUploadSerializer(serializers.Serializer[Any]):
    bundle = serializers.FileField(help_text="The bundle: a gzip-compressed tar file (see docs/model-bundles.md).")
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    promote = serializers.BooleanField(required=False, default=True,
                                       help_text="Move the production alias to this version once it is ready.")


class AliasUpdateSerializer(serializers.Serializer[Any]):
    """Either ``version`` or ``routes``; the schema says so with a ``oneOf`` (serving/schema.py)."""

    body_required = True  # each field is optional, but one of them is needed
    version = serializers.IntegerField(min_value=1, max_value=INT_MAX, required=False,
                                       help_text="Send all traffic to this version.")
    routes = RouteSerializer(many=True, required=False, allow_empty=False,
                             help_text="Or split traffic across versions (weights sum 100).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("version" in attrs) == ("routes" in attrs):
            raise serializers.ValidationError("Give either 'version' or 'routes'.")
        return attrs


class RollbackSerializer(serializers.Serializer[Any]):
    alias = serializers.CharField(required=False, default="production")


class LogLineSerializer(serializers.Serializer[Any]):
    time = serializers.DateTimeField()
    stream = serializers.CharField()
    replica = serializers.IntegerField()
    text = serializers.CharField()


class LogsSerializer(serializers.Serializer[Any]):
    lines = LogLineSerializer(many=True)


class InvocationSerializer(serializers.ModelSerializer[Invocation]):
    version = serializers.IntegerField(source="version.number", default=None, read_only=True, allow_null=True,
                                       help_text="null when the call reached no version (no route, refused).")

    class Meta:
        model = Invocation
        fields = ["request_id", "created_at", "version", "alias", "status_code", "latency_ms", "request_bytes",
                  "response_bytes", "error"]
        read_only_fields = fields


class QuotaSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    used = serializers.FloatField()
    limit = serializers.FloatField()
    shown = serializers.CharField(help_text="in words, e.g. '3 GiB of 16 GiB'")
