"""Podium's URL map: pages, the REST API under /api/v1/, health and errors."""

from __future__ import annotations

from django.urls import include, path

from webapp.core import artifacts
from webapp.core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("sandbox-artifacts/<path:path>", artifacts.sandbox_artifact, name="sandbox-artifact"),
    path("api/v1/", include("webapp.workspaces.api_urls")),
    path("accounts/", include("webapp.accounts.urls")),
    path("", include("webapp.workspaces.urls")),
    path("", include("webapp.ide.urls")),  # before the model pages: models/new is not a model
    path("", include("webapp.serving.urls")),
]

handler404 = "webapp.core.views.not_found"
handler500 = "webapp.core.views.server_error"
handler403 = "webapp.core.views.forbidden"
