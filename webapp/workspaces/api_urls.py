"""URL map of the REST API, mounted at ``/api/v1/``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

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
]
