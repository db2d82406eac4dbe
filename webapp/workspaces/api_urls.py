"""URL map of the REST API, mounted at ``/api/v1/``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from webapp.ide import api as ide
from webapp.serving import api as serving
from webapp.workspaces import api

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("me", api.MeView.as_view(), name="api-me"),
    path("roles", api.RolesView.as_view(), name="api-roles"),
    path("invitations/accept", api.InvitationAcceptView.as_view(), name="api-invitation-accept"),
    path("workspaces", api.WorkspaceListView.as_view(), name="api-workspaces"),
    path("workspaces/<slug:slug>", api.WorkspaceDetailView.as_view(), name="api-workspace"),
    path("workspaces/<slug:slug>/members", api.MemberListView.as_view(), name="api-members"),
    path("workspaces/<slug:slug>/members/<str:username>", api.MemberDetailView.as_view(), name="api-member"),
    path("workspaces/<slug:slug>/invitations", api.InvitationListView.as_view(), name="api-invitations"),
    path("workspaces/<slug:slug>/invitations/<int:pk>", api.InvitationDetailView.as_view(),
         name="api-invitation"),
    path("workspaces/<slug:slug>/keys", api.ApiKeyListView.as_view(), name="api-keys"),
    path("workspaces/<slug:slug>/keys/<int:pk>", api.ApiKeyDetailView.as_view(), name="api-key"),
    path("workspaces/<slug:slug>/audit", api.AuditLogView.as_view(), name="api-audit"),
    path("workspaces/<slug:slug>/quotas", serving.QuotaView.as_view(), name="api-quotas"),
    path("workspaces/<slug:slug>/models", ide.ModelListCreateView.as_view(), name="api-models"),
    path("workspaces/<slug:slug>/model-templates", ide.TemplateListView.as_view(), name="api-model-templates"),
    path("workspaces/<slug:slug>/models/<slug:name>", serving.ModelDetailView.as_view(), name="api-model"),
    path("workspaces/<slug:slug>/models/<slug:name>/versions", serving.VersionListView.as_view(),
         name="api-versions"),
    path("workspaces/<slug:slug>/models/<slug:name>/versions/<int:number>", serving.VersionDetailView.as_view(),
         name="api-version"),
    path("workspaces/<slug:slug>/models/<slug:name>/versions/<int:number>/logs", serving.VersionLogsView.as_view(),
         name="api-version-logs"),
    path("workspaces/<slug:slug>/models/<slug:name>/versions/<int:number>/stop", serving.VersionStopView.as_view(),
         name="api-version-stop"),
    path("workspaces/<slug:slug>/models/<slug:name>/aliases/<slug:alias>", serving.AliasView.as_view(),
         name="api-alias"),
    path("workspaces/<slug:slug>/models/<slug:name>/rollback", serving.RollbackView.as_view(), name="api-rollback"),
    path("workspaces/<slug:slug>/models/<slug:name>/calls", serving.InvocationListView.as_view(),
         name="api-calls"),
    path("workspaces/<slug:slug>/models/<slug:name>/metrics", serving.MetricsView.as_view(), name="api-metrics"),
    # The browser editor (webapp.ide, docs/ide.md).
    path("workspaces/<slug:slug>/models/<slug:name>/source", ide.SourceView.as_view(), name="api-model-source"),
    path("workspaces/<slug:slug>/models/<slug:name>/draft", ide.DraftView.as_view(), name="api-model-draft"),
    path("workspaces/<slug:slug>/models/<slug:name>/editing", ide.EditingView.as_view(), name="api-model-editing"),
    path("workspaces/<slug:slug>/models/<slug:name>/syntax", ide.SyntaxView.as_view(), name="api-model-syntax"),
    path("workspaces/<slug:slug>/models/<slug:name>/test-runs", ide.TestRunListView.as_view(), name="api-test-runs"),
    path("workspaces/<slug:slug>/models/<slug:name>/warm-runner", ide.WarmRunnerView.as_view(),
         name="api-model-warm-runner"),
    path("workspaces/<slug:slug>/models/<slug:name>/test-runs/<slug:run_id>", ide.TestRunDetailView.as_view(),
         name="api-test-run"),
    path("workspaces/<slug:slug>/models/<slug:name>/deploy", ide.DeployView.as_view(), name="api-model-deploy"),
]
