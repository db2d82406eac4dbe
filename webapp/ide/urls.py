"""The model editor's pages; included before the model pages so that ``models/new`` is not read as a
model named "new"."""

from __future__ import annotations

from django.urls import path

from webapp.ide import views

urlpatterns = [
    path("w/<slug:slug>/models/new", views.model_new, name="ws-model-new"),
    path("w/<slug:slug>/models/<slug:name>/edit", views.model_editor, name="ws-model-edit"),
]
