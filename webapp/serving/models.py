"""Models, their immutable versions, aliases with traffic weights, and call records.

Terms:
- **Model**: a named endpoint in a workspace (``/v1/models/<name>/...``).
- **ModelVersion**: one immutable upload (a bundle: code, artifact, requirements,
  resources), numbered 1, 2, ... per model. A version is also what runs: its
  replicas are one sandbox started by the executor, tracked through the
  version's ``status`` (queued -> building -> starting -> ready; failed names the
  failing step; stopping -> stopped).
- **Alias**: a movable name (``production``, ``staging``, user-defined) that routes
  to one or more ready versions with traffic weights. Promotion and rollback
  move an alias; they never rebuild anything.
- **Invocation**: one recorded call through the gateway.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.workspaces.models import ApiKey, Workspace

VERSION_STATES = ["queued", "building", "starting", "ready", "failed", "stopping", "stopped"]
STEPS = ["environment", "start", "load"]  # versions deployed before 2026-12 name the last one "ready"


class Model(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="models")
    name = models.SlugField(max_length=64)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="model_name_unique_in_workspace")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    flavor = models.CharField(max_length=16)
    manifest = models.JSONField()
    bundle_sha256 = models.CharField(max_length=64)
    bundle_size = models.PositiveBigIntegerField()
    requirements = models.TextField(blank=True)
    cpu = models.FloatField(default=1.0)
    memory_mib = models.PositiveIntegerField(default=1024)
    gpus = models.PositiveSmallIntegerField(default=0)
    replicas = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, default="queued", choices=[(s, s) for s in VERSION_STATES])
    failed_step = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    steps = models.JSONField(default=list, help_text="[{name, status, started_at, finished_at}]")
    sandbox = models.JSONField(null=True, blank=True, help_text="the executor's handle")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    unrouted_at = models.DateTimeField(
        null=True, blank=True, help_text="when the last alias stopped sending it traffic (drain starts)"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="version_number_unique")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"


class Alias(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=32)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class AliasRoute(models.Model):
    alias = models.ForeignKey(Alias, on_delete=models.CASCADE, related_name="routes")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="routes")
    weight = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alias", "version"], name="one_route_per_version")]

    def __str__(self) -> str:
        return f"{self.alias_id} -> version {self.version_id} ({self.weight}%)"


class AliasChange(models.Model):
    """History of an alias's routes, newest last. The routing in force is the newest change not
    rolled back; a rollback marks it rolled back and restores the one before (a stack, so
    rolling back twice goes back two changes)."""

    alias = models.ForeignKey(Alias, on_delete=models.CASCADE, related_name="changes")
    routes = models.JSONField(help_text="[[version_number, weight], ...] after the change")
    rolled_back = models.BooleanField(default=False)
    actor_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"alias {self.alias_id} -> {self.routes}"


class Invocation(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="invocations")
    version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    alias = models.CharField(max_length=32, blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    request_id = models.CharField(max_length=32)
    status_code = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    request_bytes = models.PositiveIntegerField()
    response_bytes = models.PositiveIntegerField()
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["model", "-created_at"]), models.Index(fields=["version", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"call {self.request_id} ({self.status_code})"
