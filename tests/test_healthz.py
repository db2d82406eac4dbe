"""/healthz reports the database, Redis and the executor."""

from __future__ import annotations

import pytest

from webapp.core import views

pytestmark = pytest.mark.django_db


def test_it_answers_200_when_everything_is_up(client, monkeypatch):
    monkeypatch.setitem(views.CHECKS, "executor", lambda: (True, "ok"))
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["parts"]["database"]["ok"] and body["parts"]["redis"]["ok"]


def test_it_names_the_part_that_is_down(client, settings, monkeypatch):
    monkeypatch.setitem(views.CHECKS, "executor", lambda: (True, "ok"))
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]
    assert "Connection" in response.json()["parts"]["redis"]["detail"]
