"""The model page in a real browser, against a real server and real sandboxes.

Alice deploys v1 through the API and opens the model page. She uploads v2 while
the page is open and watches it go from queued to ready and take production
without a reload (the events websocket). She calls the model with "try it",
sees the answer and then the call in "Recent calls" and on the charts, and reads
the version's logs live. Screenshots of each step go to test-artifacts/<test name>/.

The server is uvicorn in its own process: it reaches the test's sandbox supervisor
through ``PODIUM_VAR_DIR`` and reads build logs from the same artifact store.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from tests.browser_fixtures import (
    CHROMIUM,
    CHROMIUM_ARGS,
    artifacts,
    frontend_build,
    run_podium,
)
from tests.conftest import Person, bearer, key_for
from tests.serving.conftest import custom_bundle
from webapp.serving import recorder
from webapp.serving.models import Invocation, ModelVersion
from webapp.workspaces.models import Workspace

__all__ = ["artifacts", "frontend_build"]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GREETER = """
    import time

    class Model:
        def load(self):
            self.greeting = open("greeting.txt").read().strip()
            print(f"loaded greeting {self.greeting!r}", flush=True)
            time.sleep(float(open("delay.txt").read()))

        def predict(self, body):
            return {"greeting": self.greeting, "you_sent": body}
"""


def greeter(greeting: str, delay: float = 0) -> bytes:
    return custom_bundle(GREETER, **{"greeting.txt": greeting, "delay.txt": str(delay)})


def upload(client: APIClient, name: str, bundle: bytes) -> Any:
    data = io.BytesIO(bundle)
    data.name = "bundle.tar.gz"
    return client.post(f"/api/v1/workspaces/acme/models/{name}/versions", {"bundle": data}, format="multipart")


@pytest.fixture(scope="module")
def serving_server(serving_var: Path, django_db_setup: Any, frontend_build: Path) -> Iterator[str]:
    """uvicorn on the test database, with the sandbox supervisor and artifact store of ``serving``."""
    env = {"PODIUM_VAR_DIR": str(serving_var), "PODIUM_ARTIFACTS_DIR": str(serving_var / "artifacts")}
    with run_podium("model-browser-server.log", env) as url:
        yield url


def session_cookie(person: Person, url: str) -> dict[str, str]:
    client = Client()
    client.force_login(person.user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": url}


def recorded(request_id: str) -> Invocation:
    """The call record of ``request_id``: written by this flush, or by the recorder's own thread."""
    deadline = time.monotonic() + 5
    while True:
        recorder.flush()
        found = Invocation.objects.filter(request_id=request_id).select_related("version").first()
        if found is not None or time.monotonic() > deadline:
            assert found is not None, f"call {request_id} was not recorded"
            return found
        time.sleep(0.05)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run Django work beside the browser (Playwright's event loop owns this thread)."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


@pytest.fixture
def deployer(alice: Person, acme: Workspace, serving: Path) -> APIClient:
    return bearer(key_for(alice, acme, ["deploy", "read"]))


def test_try_it_calls_production_and_is_recorded_like_a_gateway_call(alice: Person, deployer: APIClient) -> None:
    assert upload(deployer, "greeter", greeter("hello")).status_code == 201
    client = Client()
    client.force_login(alice.user)
    response = client.post("/w/acme/models/greeter/try", {"x": 1}, content_type="application/json")
    assert response.status_code == 200, response.content
    payload = response.json()
    assert payload["answer"] == {"greeting": "hello", "you_sent": {"x": 1}}
    assert payload["version"] == 1 and payload["alias"] == "production" and payload["latency_ms"] > 0
    call = recorded(payload["request_id"])
    assert call.status_code == 200 and call.version.number == 1 and call.api_key is None
    assert call.request_bytes == len(b'{"x": 1}') and call.response_bytes > 0
    page = client.get("/w/acme/models/greeter").content.decode()
    assert f'data-call="{call.request_id}"' in page


def test_a_deploy_shows_live_and_try_it_answers_on_the_model_page(
    alice: Person, deployer: APIClient, serving_server: str, artifacts: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shot = artifacts
    cookie = session_cookie(alice, serving_server)
    errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=serving_server, viewport={"width": 1360, "height": 900})
            context.set_default_timeout(15_000)
            expect.set_options(timeout=15_000)
            context.add_cookies([cookie])
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # With no model yet, the list shows how to deploy one to this server.
            page.goto("/w/acme/models")
            expect(page.get_by_test_id("deploy-howto")).to_contain_text(f'podium.login("{serving_server}"')
            page.wait_for_selector("body[data-live=connected]", state="attached")
            page.evaluate("window.podiumTestMarker = 'not reloaded'")
            shot(page, "01-no-models-yet")

            # v1 is uploaded through the API: the open list shows it, and then ready, without a reload.
            thread, results = in_thread(lambda: upload(deployer, "greeter", greeter("one")))
            row = page.locator('[data-testid=models-table] tr[data-model="greeter"]')
            expect(row.locator('[data-status="ready"]')).to_be_visible(timeout=60_000)
            thread.join(timeout=60)
            assert results and getattr(results[0], "status_code", None) == 201, results
            assert page.evaluate("window.podiumTestMarker") == "not reloaded"
            page.reload()
            expect(row.get_by_role("cell").nth(1)).to_have_text("v1")
            shot(page, "02-model-list")
            row.get_by_role("link", name="greeter").click()
            expect(page.get_by_test_id("endpoint-url")).to_have_value(f"{serving_server}/v1/models/greeter/predict")
            page.wait_for_selector("body[data-live=connected]", state="attached")
            page.evaluate("window.podiumTestMarker = 'not reloaded'")
            expect(page.locator('[data-alias="production"] .route-seg')).to_have_text("v1 · 100%")
            shot(page, "03-model-page")

            # v2 is uploaded while the page is open: it appears, deploys and takes production live.
            thread, results = in_thread(lambda: upload(deployer, "greeter", greeter("two", delay=1.5)))
            v2 = page.locator('[data-testid=versions-table] tr[data-version="2"]')
            expect(v2).to_be_visible()
            expect(v2.locator(".status")).not_to_have_text("ready")
            shot(page, "04-v2-deploying")
            expect(v2).to_have_attribute("data-version-status", "ready", timeout=60_000)
            expect(page.locator('[data-alias="production"] .route-seg')).to_have_text("v2 · 100%")
            expect(v2.locator(".step-done")).to_have_count(3)
            thread.join(timeout=60)
            assert results and getattr(results[0], "status_code", None) == 201, results
            assert page.evaluate("window.podiumTestMarker") == "not reloaded"
            shot(page, "05-v2-ready-live")

            # Try it: the answer comes from v2 through production.
            page.get_by_label("Request body (JSON)").fill('{"question": "who?"}')
            page.get_by_role("button", name="Send").click()
            answer = page.get_by_test_id("try-answer")
            expect(answer).to_contain_text('"greeting": "two"')
            assert json.loads(answer.text_content() or "") == {"greeting": "two", "you_sent": {"question": "who?"}}
            expect(page.locator("[data-try-status]")).to_have_text("200")
            expect(page.locator("[data-try-version]")).to_have_text("v2 · production")
            shot(page, "06-try-it")

            # The call shows up in recent calls and on the charts without a reload.
            calls = page.get_by_test_id("calls-table")
            expect(calls.locator("tr[data-call]")).to_have_count(1)
            expect(calls.locator("tr[data-call]").first).to_contain_text("v2")
            expect(calls.locator("tr[data-call] .http-2xx")).to_have_text("200")
            expect(page.locator('[data-metric-version="v2"] canvas')).to_have_count(3)
            assert page.evaluate("window.podiumTestMarker") == "not reloaded"
            shot(page, "07-recent-calls-and-charts")

            # The log panel showed the version serving when the page opened; v2 is picked from the list.
            logs = page.locator("#logs [data-logs-lines]")
            expect(logs).to_contain_text("loaded greeting 'one'")
            page.locator("#logs-version").select_option("2")
            expect(logs).to_contain_text("loaded greeting 'two'")
            expect(logs).not_to_contain_text("loaded greeting 'one'")
            shot(page, "08-live-logs")

            # The version page: finished steps with timings and the live runtime log.
            page.goto("/w/acme/models/greeter/versions/2")
            expect(page.get_by_test_id("steps-table").locator(".status-step-done")).to_have_count(3)
            expect(page.locator("[data-logs-lines]")).to_contain_text("loaded greeting 'two'")
            page.get_by_role("tab", name="Build").click()
            expect(page.locator("[data-logs]")).to_have_attribute("data-source", "build")
            page.get_by_role("tab", name="Runtime").click()
            expect(page.locator("[data-logs-lines]")).to_contain_text("loaded greeting 'two'")
            shot(page, "09-version-page")
        finally:
            browser.close()
    assert not errors, f"script errors on the page: {errors}"
    assert ModelVersion.objects.get(model__name="greeter", number=2).status == "ready"
