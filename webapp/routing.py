"""Websocket URL map."""

from __future__ import annotations

from django.urls import path

from webapp.workspaces.consumers import WorkspaceEventsConsumer

websocket_urlpatterns = [
    path("ws/workspaces/<slug:slug>/events", WorkspaceEventsConsumer.as_asgi()),
]
