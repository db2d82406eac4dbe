"""REST API for models: upload versions, watch deploys, move aliases, read logs, calls and metrics."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from sandbox import SandboxError, SandboxHandle, get_executor
from webapp.core.api import whole_number
from webapp.serving import actions, deploy, quotas
from webapp.serving import serializers as s
from webapp.serving.models import Alias, AliasRoute, Invocation, Model, ModelVersion
from webapp.workspaces.access import scoped
from webapp.workspaces.api import WorkspaceAPIView, _valid


def _models(view: WorkspaceAPIView) -> QuerySet[Model]:
    routes = Prefetch("aliases", queryset=Alias.objects.prefetch_related(
        Prefetch("routes", queryset=AliasRoute.objects.select_related("version"))).select_related("model"))
    return Model.objects.filter(workspace=view.access.workspace).prefetch_related(routes, "versions")


class ModelListView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read"}

    @extend_schema(responses=s.ModelSerializer(many=True), summary="List models", tags=["models"])
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.ModelSerializer(_models(self), many=True).data)


class ModelDetailView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "DELETE": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"DELETE": (409,)}  # a version is deploying

    @extend_schema(responses=s.ModelSerializer, summary="Get a model with its aliases", tags=["models"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        return Response(s.ModelSerializer(scoped(_models(self), self.access, name=name)).data)

    @extend_schema(responses={204: None}, summary="Delete a model, every version and its calls", tags=["models"],
                   description="Serving stops at once; the replicas stop and the bundles are removed. Refused "
                               "(409) while a version is deploying.")
    def delete(self, request: Request, slug: str, name: str) -> Response:
        actions.delete_model(self.actor, self.access, scoped(Model.objects.all(), self.access, name=name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class _VersionView(WorkspaceAPIView):
    def model(self, name: str) -> Model:
        return scoped(Model.objects.all(), self.access, name=name)

    def version(self, name: str, number: int) -> ModelVersion:
        return scoped(ModelVersion.objects.select_related("model", "created_by"), self.access,
                      model__name=name, number=number)


class VersionListView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "POST": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # past a quota
    parser_classes = [MultiPartParser]

    @extend_schema(responses=s.VersionSerializer(many=True), summary="List a model's versions", tags=["models"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        versions = ModelVersion.objects.filter(model=self.model(name)).select_related("model", "created_by")
        return Response(s.VersionSerializer(versions, many=True).data)

    @extend_schema(request={"multipart/form-data": s.VersionUploadSerializer},
                   responses={201: s.VersionSerializer},
                   summary="Upload a new version (creates the model on first upload) and deploy it",
                   tags=["models"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        serializer = s.VersionUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = actions.create_version(self.actor, self.access, name, data["bundle"],
                                         data.get("description", ""), data.get("promote", True))
        return Response(s.VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "DELETE": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"DELETE": (409,)}  # it takes traffic, or deploys

    @extend_schema(responses=s.VersionSerializer, summary="Get a version and its deploy steps", tags=["models"])
    def get(self, request: Request, slug: str, name: str, number: int) -> Response:
        return Response(s.VersionSerializer(self.version(name, number)).data)

    @extend_schema(responses={204: None}, summary="Delete a version", tags=["models"],
                   description="Its replicas stop and its bundle and logs are removed; its call records stay. "
                               "Refused (409) while an alias routes to it or it is deploying.")
    def delete(self, request: Request, slug: str, name: str, number: int) -> Response:
        actions.delete_version(self.actor, self.access, self.version(name, number))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionStopView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # an alias still routes to it

    @extend_schema(request=None, responses=s.VersionSerializer, summary="Stop a version's replicas", tags=["models"])
    def post(self, request: Request, slug: str, name: str, number: int) -> Response:
        version = self.version(name, number)
        actions.stop_version(self.actor, self.access, version)
        version.refresh_from_db()
        return Response(s.VersionSerializer(version).data)


class VersionLogsView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read"}

    @extend_schema(
        parameters=[OpenApiParameter("source", str, enum=["runtime", "build"], description="default runtime"),
                    OpenApiParameter("tail", int, description="last N lines (default 200, at most 5000)")],
        responses=s.LogsSerializer, summary="Read a version's build or runtime logs", tags=["models"],
    )
    def get(self, request: Request, slug: str, name: str, number: int) -> Response:
        version = self.version(name, number)
        tail = min(max(whole_number(request.query_params, "tail", 200), 1), 5000)
        source = request.query_params.get("source", "runtime")
        if source not in ("runtime", "build"):
            raise actions.ActionError("'source' is 'runtime' or 'build'.", field="source")
        lines = _build_lines(version, tail) if source == "build" else _runtime_lines(version, tail)
        return Response({"lines": lines})


def _build_lines(version: ModelVersion, tail: int) -> list[dict[str, Any]]:
    path = deploy.build_log_path(version)
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(errors="replace").splitlines()[-tail:]:
        when, _, text = raw.partition(" ")
        lines.append({"time": when, "stream": "build", "replica": 0, "text": text})
    return lines


def _runtime_lines(version: ModelVersion, tail: int) -> list[dict[str, Any]]:
    if not version.sandbox:
        return []
    try:
        found = get_executor().logs(SandboxHandle.model_validate(version.sandbox), tail=tail)
        return [line.model_dump(mode="json") for line in found]
    except SandboxError:
        return []


class AliasView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # a version that is not ready

    @extend_schema(request=s.AliasUpdateSerializer, responses=s.AliasSerializer,
                   summary="Point an alias at a version, or split its traffic (promote, A/B test)", tags=["models"])
    def post(self, request: Request, slug: str, name: str, alias: str) -> Response:
        data = _valid(s.AliasUpdateSerializer, request)
        if "version" in data:
            routes = [(data["version"], 100)]
        else:
            routes = [(r["version"], r["weight"]) for r in data["routes"]]
        moved = actions.set_routes(self.actor, self.access, self.model(name), alias, routes)
        return Response(s.AliasSerializer(moved).data)


class RollbackView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # nothing to roll back to

    @extend_schema(request=s.RollbackSerializer, responses=s.AliasSerializer,
                   summary="Roll an alias back to its previous routing (no rebuild)", tags=["models"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        data = _valid(s.RollbackSerializer, request)
        alias = actions.rollback(self.actor, self.access, self.model(name), data["alias"])
        return Response(s.AliasSerializer(alias).data)


class InvocationListView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read"}

    @extend_schema(parameters=[OpenApiParameter("limit", int, description="default 50, at most 500")],
                   responses=s.InvocationSerializer(many=True), summary="Recent calls, newest first",
                   tags=["models"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        limit = min(max(whole_number(request.query_params, "limit", 50), 1), 500)
        calls = Invocation.objects.filter(model=self.model(name)).select_related("version")[:limit]
        return Response(s.InvocationSerializer(calls, many=True).data)


METRICS_SQL = """
SELECT date_trunc('minute', i.created_at) AS minute, v.number,
       count(*) AS requests,
       count(*) FILTER (WHERE i.status_code >= 500) AS errors,
       count(*) FILTER (WHERE i.status_code BETWEEN 400 AND 499) AS refused,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY i.latency_ms) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY i.latency_ms) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY i.latency_ms) AS p99
FROM serving_invocation i LEFT JOIN serving_modelversion v ON v.id = i.version_id
WHERE i.model_id = %s AND i.created_at >= %s
GROUP BY 1, 2 ORDER BY 1, 2
"""


class MetricsView(_VersionView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read"}

    @extend_schema(parameters=[OpenApiParameter("minutes", int, description="window, default 60, at most 1440")],
                   responses={200: dict},
                   summary="Requests, failed (5xx) and refused (4xx) calls, latency percentiles per minute, version",
                   tags=["models"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        minutes = min(max(whole_number(request.query_params, "minutes", 60), 1), 1440)
        since = timezone.now() - dt.timedelta(minutes=minutes)
        with connection.cursor() as cursor:
            cursor.execute(METRICS_SQL, [self.model(name).pk, since])
            rows = cursor.fetchall()
        series = [
            {"minute": minute.isoformat(), "version": number, "requests": requests, "errors": errors,
             "refused": refused, "error_rate": errors / requests if requests else 0.0,
             "refused_rate": refused / requests if requests else 0.0,
             "p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "p99_ms": round(p99, 3)}
            for minute, number, requests, errors, refused, p50, p95, p99 in rows
        ]
        return Response({"minutes": minutes, "series": series})


class QuotaView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "workspace.read"}

    @extend_schema(responses=s.QuotaSerializer(many=True), summary="The workspace's quotas and what it uses of them",
                   tags=["workspaces"])
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.QuotaSerializer(quotas.report(self.access.workspace), many=True).data)
