"""REST API of the browser editor, under ``/api/v1/workspaces/<slug>/models/<name>/...``.

Thin views: look the model up in the caller's workspace (404 for anything else,
before any input is read), parse the body, call one action, serialise. See docs/ide.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.core.api import whole_number
from webapp.ide import actions, catalog, runner
from webapp.ide import files as f
from webapp.ide import serializers as s
from webapp.ide.models import Draft, SourceRevision, TestRun
from webapp.serving import serializers as serving_s
from webapp.serving.api import ModelListView
from webapp.serving.models import Model
from webapp.workspaces.access import scoped
from webapp.workspaces.api import WorkspaceAPIView, _valid

NO_DRAFT = {"detail": "no draft", "code": "not_found"}


class _ModelView(WorkspaceAPIView):
    def model(self, name: str) -> Model:
        return scoped(Model.objects.all(), self.access, name=name)


class ModelListCreateView(ModelListView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "POST": "models.write"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # the name is taken

    @extend_schema(request=s.ModelCreateSerializer, responses={201: serving_s.ModelSerializer},
                   summary="Create a model from a starter template (its source; no version yet)", tags=["editor"])
    def post(self, request: Request, slug: str) -> Response:
        data = _valid(s.ModelCreateSerializer, request)
        model = actions.create_from_template(self.actor, self.access, data["name"], data["template"],
                                             data.get("description", ""))
        return Response(serving_s.ModelSerializer(model).data, status=status.HTTP_201_CREATED)


class TemplateListView(WorkspaceAPIView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read"}

    @extend_schema(responses=s.TemplateSerializer(many=True), summary="Starter templates for new models",
                   tags=["editor"])
    def get(self, request: Request, slug: str) -> Response:
        return Response(catalog.listing())


class SourceView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "PUT": "models.write"}

    @extend_schema(parameters=[OpenApiParameter("revision", int, description="an earlier revision (a merge base)")],
                   responses=s.SourceSerializer, summary="A model's saved source files", tags=["editor"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        source = actions.source_of(self.model(name))
        body = dict(s.SourceSerializer(source).data)
        wanted = whole_number(request.query_params, "revision", source.revision)
        if wanted != source.revision:
            old = scoped(SourceRevision.objects.select_related("saved_by"), self.access, model=source.model,
                         number=wanted)
            body.update(files=old.files, revision=old.number, saved_at=old.saved_at.isoformat(),
                        saved_by=old.saved_by.username if old.saved_by else None)
        return Response(body)

    @extend_schema(request=s.SourceUpdateSerializer, responses={200: s.SourceSerializer, 409: s.ConflictSerializer},
                   summary="Save the source (refused with 409 and their source when someone saved since)",
                   tags=["editor"])
    def put(self, request: Request, slug: str, name: str) -> Response:
        model = self.model(name)
        data = _valid(s.SourceUpdateSerializer, request)
        try:
            source = actions.save_source(self.actor, self.access, model, data["files"], data["base_revision"],
                                         data.get("sample_input"), has_sample="sample_input" in request.data)
        except actions.SourceConflict as conflict:
            return Response({"detail": conflict.message, "code": "conflict",
                             "theirs": s.SourceSerializer(conflict.theirs).data}, status=status.HTTP_409_CONFLICT)
        return Response(s.SourceSerializer(source).data)


class DraftView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "PUT": "models.write", "DELETE": "models.write"}

    @extend_schema(responses={200: s.DraftSerializer}, summary="My unsaved edits of this model", tags=["editor"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        draft = Draft.objects.filter(model=self.model(name), user=self.actor.user).first()
        if draft is None:
            return Response(NO_DRAFT, status=status.HTTP_404_NOT_FOUND)
        return Response(s.DraftSerializer(draft).data)

    @extend_schema(request=s.DraftUpdateSerializer, responses=s.DraftSerializer, summary="Keep my unsaved edits",
                   tags=["editor"])
    def put(self, request: Request, slug: str, name: str) -> Response:
        model = self.model(name)
        data = _valid(s.DraftUpdateSerializer, request)
        draft = actions.save_draft(self.actor, self.access, model, data["files"], data["base_revision"],
                                   data.get("sample_input"))
        return Response(s.DraftSerializer(draft).data)

    @extend_schema(responses={204: None}, summary="Drop my unsaved edits (after a save)", tags=["editor"])
    def delete(self, request: Request, slug: str, name: str) -> Response:
        actions.delete_draft(self.actor, self.access, self.model(name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EditingView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.read", "DELETE": "models.read"}

    @extend_schema(request=None, responses=s.EditingSerializer,
                   summary="I have this model open (every ~15 s); who else does", tags=["editor"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        return Response({"editors": actions.heartbeat(self.actor, self.access, self.model(name))})

    @extend_schema(responses={204: None}, summary="I closed this model", tags=["editor"])
    def delete(self, request: Request, slug: str, name: str) -> Response:
        actions.heartbeat(self.actor, self.access, self.model(name), leaving=True)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SyntaxView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.read"}

    @extend_schema(request=s.SyntaxSerializer, responses=s.SyntaxResultSerializer,
                   summary="Syntax errors of one file (parsed, never run)", tags=["editor"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        self.model(name)
        data = _valid(s.SyntaxSerializer, request)
        return Response({"errors": f.syntax_errors(data["path"], data["content"])})


def _run_body(run: TestRun) -> dict[str, Any]:
    if runner.interrupted(run):
        run.status, run.failed_step = "failed", run.failed_step or "start"
        run.error = run.error or runner._error("Interrupted", "The test run was interrupted; start it again.")
    if not run.done:
        run.output = runner.live_lines(run.pk)
    return dict(s.TestRunSerializer(run).data)


class TestRunListView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read", "POST": "models.write"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # past the test-run quota

    @extend_schema(responses=s.TestRunSerializer(many=True), summary="Recent test runs of a model (newest first)",
                   tags=["editor"])
    def get(self, request: Request, slug: str, name: str) -> Response:
        runs = TestRun.objects.filter(model=self.model(name)).select_related("created_by")[:20]
        return Response([_run_body(run) for run in runs])

    @extend_schema(request=s.TestRunCreateSerializer, responses={201: s.TestRunCreatedSerializer},
                   summary="Test files: load() then predict() on a sample input, in a sandbox", tags=["editor"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        model = self.model(name)
        data = _valid(s.TestRunCreateSerializer, request)
        run = actions.start_test_run(self.actor, self.access, model, data["files"], data["sample_input"])
        return Response({"id": run.pk, "status": "queued"}, status=status.HTTP_201_CREATED)


class WarmRunnerView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.write"}

    @extend_schema(request=s.WarmRunnerRequestSerializer, responses={202: s.WarmRunnerStateSerializer},
                   summary="Get a warm runner ready for your next Test (the editor calls it when it opens)",
                   tags=["editor"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        model = self.model(name)
        data = _valid(s.WarmRunnerRequestSerializer, request)
        state = actions.prewarm(self.actor, self.access, model, data.get("files"))
        return Response({"status": state}, status=status.HTTP_202_ACCEPTED)


class TestRunDetailView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"GET": "models.read"}

    @extend_schema(responses=s.TestRunSerializer, summary="A test run: status, output, result or error",
                   tags=["editor"])
    def get(self, request: Request, slug: str, name: str, run_id: str) -> Response:
        run = scoped(TestRun.objects.select_related("created_by"), self.access, model__name=name, pk=run_id)
        return Response(_run_body(run))


class DeployView(_ModelView):
    perms: ClassVar[dict[str, str]] = {"POST": "models.deploy"}
    error_statuses: ClassVar[dict[str, tuple[int, ...]]] = {"POST": (409,)}  # no source saved yet

    @extend_schema(request=s.DeploySerializer, responses={201: serving_s.VersionSerializer},
                   summary="Deploy the saved source (or the given files) as a new version", tags=["editor"])
    def post(self, request: Request, slug: str, name: str) -> Response:
        model = self.model(name)
        data = _valid(s.DeploySerializer, request)
        version = actions.deploy_from_editor(self.actor, self.access, model, data.get("files"),
                                             data.get("description", ""), data.get("promote", True))
        return Response(serving_s.VersionSerializer(version).data, status=status.HTTP_201_CREATED)


TestRunListView.__test__ = False  # type: ignore[attr-defined]
TestRunDetailView.__test__ = False  # type: ignore[attr-defined]
