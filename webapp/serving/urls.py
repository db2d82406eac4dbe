"""Model pages under ``/w/<slug>/models``; each view declares its permissions (``podium_perms``)."""

from __future__ import annotations

from django.urls import path

from webapp.serving import views

MODEL = "w/<slug:slug>/models/<slug:name>"

urlpatterns = [
    path("w/<slug:slug>/models", views.model_list, name="ws-models"),
    path(MODEL, views.model_detail, name="ws-model"),
    path(f"{MODEL}/promote", views.model_promote, name="ws-model-promote"),
    path(f"{MODEL}/split", views.model_split, name="ws-model-split"),
    path(f"{MODEL}/rollback", views.model_rollback, name="ws-model-rollback"),
    path(f"{MODEL}/try", views.model_try, name="ws-model-try"),
    path(f"{MODEL}/versions/<int:number>", views.version_detail, name="ws-model-version"),
    path(f"{MODEL}/versions/<int:number>/stop", views.version_stop, name="ws-model-version-stop"),
    path(f"{MODEL}/versions/<int:number>/delete", views.version_delete, name="ws-model-version-delete"),
    path(f"{MODEL}/delete", views.model_delete, name="ws-model-delete"),
]
