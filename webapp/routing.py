"""Websocket URL map."""

from __future__ import annotations

from django.urls import path

from webapp.ide.consumers import TestRunConsumer
from webapp.serving.consumers import VersionLogsConsumer
from webapp.workspaces.consumers import WorkspaceEventsConsumer

websocket_urlpatterns = [
    path("ws/workspaces/<slug:slug>/events", WorkspaceEventsConsumer.as_asgi()),
    path("ws/workspaces/<slug:slug>/models/<slug:name>/versions/<int:number>/logs", VersionLogsConsumer.as_asgi()),
    path("ws/workspaces/<slug:slug>/models/<slug:name>/test-runs/<slug:run_id>", TestRunConsumer.as_asgi()),
]
