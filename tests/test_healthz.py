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


def test_an_unreachable_executor_degrades_but_does_not_fail_the_check(client, monkeypatch):
    down = "Nomad agent at http://10.0.0.1:4646 does not answer"
    monkeypatch.setitem(views.CHECKS, "executor", lambda: (False, down))
    response = client.get("/healthz")
    assert response.status_code == 200  # predictions still answer: a load balancer keeps this web process
    body = response.json()
    assert body["status"] == "degraded" and body["degraded"] == ["executor"] and body["down"] == []
    assert "does not answer" in body["parts"]["executor"]["detail"]


def test_a_database_or_redis_outage_is_still_down_with_the_executor_named_degraded(client, settings, monkeypatch):
    monkeypatch.setitem(views.CHECKS, "executor", lambda: (False, "no supervisor"))
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"] and response.json()["degraded"] == ["executor"]
