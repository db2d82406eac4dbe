"""The model editor in a real browser, against a real server, a Celery worker and real sandboxes.

Nora, new to Podium, signs in, creates a model from the scikit-learn template, changes its code by
typing in Monaco, tests it and reads the answer, deploys it and watches the steps, then calls the
endpoint from the page and with the curl snippet the page gives her, and finds both calls in the
model's recent calls. Then Vera (a viewer) gets a read-only editor, and Dan's stale save is refused
and shown side by side with Alice's before he keeps his. Screenshots of each step go to
test-artifacts/<test name>/.

The server is uvicorn and a Celery worker in their own processes (test runs and deploys are Celery
tasks): they reach this module's own sandbox supervisor through ``PODIUM_VAR_DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from sandbox.config import SandboxConfig
from tests.browser_fixtures import (
    CHROMIUM,
    CHROMIUM_ARGS,
    artifacts,
    frontend_build,
    run_podium,
)
from tests.conftest import PASSWORD, Person, key_for, make_user
from tests.sandbox.conftest import sandboxes_possible, start_supervisor, stop_supervisor
from webapp.ide import actions as ide_actions
from webapp.ide.models import ModelSource
from webapp.serving.models import Model, ModelVersion
from webapp.workspaces import actions as workspace_actions
from webapp.workspaces.models import Membership, Workspace

__all__ = ["artifacts", "frontend_build"]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_MS = 240_000  # a cold scikit-learn environment is built once per test session
TYPED = '"note": "typed in the browser",'


@pytest.fixture(scope="module")
def browser_var() -> Iterator[Path]:
    """A sandbox supervisor and var dir of these browser tests alone: the environments they build do not
    turn the cold runs of tests/ide/test_ide_runs.py into warm ones."""
    reason = sandboxes_possible()
    if reason:
        pytest.fail(f"the editor's browser tests need real sandboxes: {reason}")
    path = Path(tempfile.mkdtemp(prefix="podium-ide-browser-", dir="/tmp"))
    path.chmod(0o755)
    proc = start_supervisor(SandboxConfig(var_dir=path, uid_base=330_000, uid_count=1000))
    artifacts = path / "artifacts"
    artifacts.mkdir()
    artifacts.chmod(0o755)
    yield path
    stop_supervisor(proc)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sklearn_environment(browser_var: Path) -> None:
    """The scikit-learn template's environment, built once before the browser clicks "Test" (the warm path
    the editor is made for; a cold one is built by the worker)."""
    from sandbox.environments import EnvironmentBuilder
    from sandbox.executors.local import LocalExecutor
    from webapp.ide import catalog
    from webapp.ide import files as ide_files

    manifest = ide_files.manifest_for(catalog.templates()["sklearn"]["files"])
    config = SandboxConfig(var_dir=browser_var)
    # Index packages with wheels: a shared environment, found by every workspace's runs.
    EnvironmentBuilder(root=config.envs_dir, executor=LocalExecutor(config=config)).ensure(
        "\n".join(manifest["requirements"]), tenant="w0")


@pytest.fixture(scope="module")
def ide_server(browser_var: Path, sklearn_environment: None, django_db_setup: Any,
               frontend_build: Path) -> Iterator[str]:
    """uvicorn and a Celery worker on the test database, with the sandbox supervisor of ``browser_var``."""
    env = {"PODIUM_VAR_DIR": str(browser_var), "PODIUM_ARTIFACTS_DIR": str(browser_var / "artifacts"),
           "PODIUM_DRAIN_S": "0"}
    with run_podium("ide-browser-server.log", env, worker=True) as url:
        yield url


def person(username: str) -> Person:
    """A user the server can sign in: the server checks passwords with its own hashers, not the tests' fast one."""
    user = make_user(username)
    set_server_password(user)
    return Person(user)


def set_server_password(user: User) -> None:
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, get_random_string(12), iterations=1000)
    user.save(update_fields=["password"])


def leave(workspace: Workspace, name: str, *people: Person) -> None:
    """Everyone has closed the editor: no presence is left in Redis for a later test (or run) to see."""
    model = Model.objects.get(workspace=workspace, name=name)
    for someone in people:
        ide_actions.heartbeat(someone.actor, someone.access(workspace), model, leaving=True)


def sign_in(page: Any, username: str) -> None:
    page.goto("/accounts/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/accounts/login" not in page.url, f"{username} could not sign in"


def open_editor(page: Any, slug: str, name: str) -> None:
    page.goto(f"/w/{slug}/models/{name}/edit")
    page.wait_for_selector("[data-ide][data-state=ready]", state="attached")


def line_of(page: Any, path: str, needle: str) -> int:
    text = page.evaluate("(path) => window.podiumIde.value(path)", path)
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def type_after(page: Any, path: str, needle: str, text: str) -> None:
    """Put the cursor at the end of the line holding ``needle`` and type a new line below it."""
    line = line_of(page, path, needle)
    page.evaluate("""([path, line]) => {
        window.podiumIde.open(path);
        const editor = window.podiumIde.editor;
        editor.setPosition({lineNumber: line, column: editor.getModel().getLineMaxColumn(line)});
        editor.focus();
    }""", [path, line])
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type(text)


def browser_session(playwright: Any, url: str) -> Any:
    from playwright.sync_api import expect

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    expect.set_options(timeout=15_000)
    return browser


def new_page(browser: Any, url: str, errors: list[str]) -> Any:
    context = browser.new_context(base_url=url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def test_a_new_user_writes_tests_deploys_and_calls_a_model_from_the_browser(
    ide_server: str, artifacts: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shot = artifacts
    nora = person("nora")
    workspace = workspace_actions.create_workspace(nora.actor, "Nora's lab", slug="nora-lab")
    secret = key_for(nora, workspace, ["invoke"])
    errors: list[str] = []

    with sync_playwright() as playwright:
        browser = browser_session(playwright, ide_server)
        try:
            page = new_page(browser, ide_server, errors)
            sign_in(page, "nora")
            page.goto("/w/nora-lab/models")
            shot(page, "01-models-empty")

            # A new model from the scikit-learn template.
            page.get_by_test_id("new-model").click()
            cards = page.locator("[data-template]")
            expect(cards.first).to_be_visible()
            page.locator('[data-template="sklearn"]').click()
            page.get_by_label("Name").fill("iris")
            shot(page, "02-new-model-templates")
            page.get_by_role("button", name="Create and open the editor").click()
            page.wait_for_url("**/w/nora-lab/models/iris/edit")
            page.wait_for_selector("[data-ide][data-state=ready]", state="attached")
            expect(page.locator('[data-tree] [data-path="model.py"]')).to_be_visible()
            expect(page.locator('[data-tree] [data-path="requirements.txt"]')).to_be_visible()
            expect(page.locator(".monaco-editor .view-lines")).to_contain_text("class Model")
            shot(page, "03-editor")

            # Typing in Monaco marks the file unsaved; Ctrl+S saves it.
            type_after(page, "model.py", '"confidence":', TYPED)
            expect(page.locator('.ide-tab[data-path="model.py"] .dirty-dot')).to_be_visible()
            expect(page.locator('[data-tree] [data-path="model.py"].dirty')).to_be_visible()
            assert TYPED in page.evaluate("window.podiumIde.value('model.py')")
            shot(page, "04-typed-unsaved")
            page.keyboard.press("Control+s")
            expect(page.locator("[data-ide]")).to_have_attribute("data-dirty", "false")
            expect(page.locator("[data-save-state]")).to_contain_text("Saved by you")
            expect(page.locator('[data-tree] [data-path="model.py"].dirty')).to_have_count(0)

            # Test: load() then predict() on the template's sample input, in a sandbox.
            page.get_by_role("button", name="Test").click()
            answer = page.get_by_test_id("test-answer")
            expect(answer).to_contain_text("typed in the browser", timeout=BUILD_TIMEOUT_MS)
            result = json.loads(answer.text_content() or "")
            assert result["predictions"] == ["setosa", "virginica"] and result["note"] == "typed in the browser"
            expect(page.locator("[data-run-timing]")).to_contain_text("load")
            expect(page.locator("[data-run-timing]")).to_contain_text("predict")
            shot(page, "05-test-passed")

            # Deploy: the steps move live, then the endpoint panel.
            page.get_by_role("button", name="Deploy").click()
            expect(page.locator("[data-steps] [data-step]")).to_have_count(3)
            shot(page, "06-deploying")
            expect(page.locator("[data-deploy-panel]")).to_have_attribute("data-deploy-status", "ready",
                                                                          timeout=BUILD_TIMEOUT_MS)
            expect(page.locator('[data-steps] [data-step-status="done"]')).to_have_count(3)
            endpoint = f"{ide_server}/v1/models/iris/predict"
            expect(page.get_by_test_id("ide-endpoint")).to_have_value(endpoint)
            curl = page.locator("[data-snippet-curl]").text_content() or ""
            assert endpoint in curl and "$PODIUM_API_KEY" in curl
            assert endpoint in (page.locator("[data-snippet-python]").text_content() or "")
            shot(page, "07-deployed-endpoint")

            # A call from the page, through production.
            page.get_by_role("button", name="Send").click()
            expect(page.get_by_test_id("ide-call-answer")).to_contain_text("typed in the browser")
            expect(page.locator("[data-call-status]")).to_have_text("200")
            shot(page, "08-called-from-the-page")

            # The curl snippet, as the page shows it, with a real key.
            done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30,
                                  env={**os.environ, "PODIUM_API_KEY": secret})
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["note"] == "typed in the browser", done.stdout

            # The version's live logs are on the page.
            logs = page.get_by_test_id("ide-logs")
            logs.scroll_into_view_if_needed()
            expect(logs.locator(".log-line").first).to_be_visible()
            shot(page, "09-logs")

            # A failing predict(): the traceback is shown and its line is marked in the editor.
            type_after(page, "model.py", 'rows = body["inputs"]', 'missing = rows["no such key"]')
            failing = line_of(page, "model.py", "no such key")
            page.locator('[data-side-tab="test"]').click()
            page.get_by_role("button", name="Test").click()
            expect(page.get_by_test_id("test-traceback")).to_contain_text("TypeError", timeout=60_000)
            expect(page.locator("[data-ide]")).to_have_attribute("data-error-line", f"model.py:{failing}")
            expect(page.locator(".monaco-editor .ide-error-line")).to_be_visible()
            shot(page, "10-failing-line-marked")

            # Deploying after a failed Test asks first; saying no makes no version.
            questions: list[str] = []

            def decline(dialog: Any) -> None:
                questions.append(dialog.message)
                dialog.dismiss()

            page.once("dialog", decline)
            page.get_by_role("button", name="Deploy").click()
            expect(page.locator("[data-ide]")).to_have_attribute("data-dirty", "true")  # nothing was saved
            assert questions and questions[0].startswith("The last test run of this code failed. Deploy it anyway?")

            # Both calls are in the model's recent calls.
            page.goto("/w/nora-lab/models/iris")
            calls = page.get_by_test_id("calls-table").locator("tr[data-call]")
            deadline = time.monotonic() + 10
            while calls.count() < 2 and time.monotonic() < deadline:
                page.wait_for_timeout(500)
                page.reload()
            expect(calls).to_have_count(2)
            shot(page, "11-recent-calls")
        finally:
            browser.close()
    leave(workspace, "iris", nora)
    assert not errors, f"script errors on the page: {errors}"
    assert ModelSource.objects.get(model__name="iris").revision == 2
    assert ModelVersion.objects.filter(model__name="iris").count() == 1  # declining the question deployed nothing


def test_a_viewer_reads_and_a_stale_save_opens_the_compare_view(
    alice: Person, acme: Workspace, ide_server: str, artifacts: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shot = artifacts
    people = {"alice": alice}
    for username, role in (("vera", "viewer"), ("dan", "developer")):
        people[username] = person(username)
        Membership.objects.create(workspace=acme, user=people[username].user, role=role)
    set_server_password(alice.user)
    creator = APIClient()
    creator.force_login(alice.user)
    created = creator.post("/api/v1/workspaces/acme/models", {"name": "greeter", "template": "custom"}, format="json")
    assert created.status_code == 201, created.content
    errors: list[str] = []

    with sync_playwright() as playwright:
        browser = browser_session(playwright, ide_server)
        try:
            # Vera, a viewer: the code, read only, and nothing to save, test or deploy.
            vera = new_page(browser, ide_server, errors)
            sign_in(vera, "vera")
            open_editor(vera, "acme", "greeter")
            expect(vera.get_by_test_id("read-only")).to_be_visible()
            for name in ("Save", "Test", "Deploy", "New", "Upload"):
                expect(vera.get_by_role("button", name=name, exact=True)).to_have_count(0)
            before = vera.evaluate("window.podiumIde.value('model.py')")
            vera.locator(".monaco-editor .view-lines").click()
            vera.keyboard.type("vera was here")
            assert vera.evaluate("window.podiumIde.value('model.py')") == before
            expect(vera.locator("[data-sample]")).to_have_attribute("readonly", "")
            shot(vera, "01-viewer-read-only")

            # Alice and Dan open the same model, and each is told the other is there.
            page_alice = new_page(browser, ide_server, errors)
            sign_in(page_alice, "alice")
            open_editor(page_alice, "acme", "greeter")
            dan = new_page(browser, ide_server, errors)
            sign_in(dan, "dan")
            open_editor(dan, "acme", "greeter")
            expect(dan.locator("[data-presence]")).to_contain_text("alice")
            expect(page_alice.locator("[data-presence]")).to_contain_text("dan")
            shot(dan, "02-presence")

            # Dan's edit is kept as a draft on the server: a reload brings it back.
            type_after(dan, "model.py", "def predict", "    # dan's change")
            expect(dan.locator("[data-ide]")).to_have_attribute("data-draft", "saved")
            dan.reload()
            dan.wait_for_selector("[data-ide][data-state=ready]", state="attached")
            expect(dan.locator("[data-notice]")).to_contain_text("Restored your unsaved draft")
            assert "# dan's change" in dan.evaluate("window.podiumIde.value('model.py')")
            expect(dan.locator('[data-tree] [data-path="model.py"].dirty')).to_be_visible()
            shot(dan, "03-draft-restored")

            # Alice saves first.
            type_after(page_alice, "model.py", "def predict", "    # alice's change")
            page_alice.keyboard.press("Control+s")
            expect(page_alice.locator("[data-ide]")).to_have_attribute("data-revision", "2")

            # Dan's save is refused and shows both sides; he keeps his, with Alice's revision as the base.
            dan.locator(".monaco-editor .view-lines").first.click()
            dan.keyboard.press("Control+s")
            expect(dan.locator("[data-compare]")).to_be_visible()
            expect(dan.locator("[data-compare-who]")).to_contain_text("alice")
            expect(dan.locator("[data-diff] .monaco-diff-editor")).to_be_visible()
            expect(dan.locator("[data-diff] .editor.original")).to_contain_text("alice's change")
            expect(dan.locator("[data-diff] .editor.modified")).to_contain_text("dan's change")
            shot(dan, "04-compare-view")
            dan.get_by_role("button", name="Keep mine (overwrite)").click()
            expect(dan.locator("[data-compare]")).to_be_hidden()
            expect(dan.locator("[data-ide]")).to_have_attribute("data-revision", "3")
            expect(dan.locator("[data-ide]")).to_have_attribute("data-dirty", "false")
            shot(dan, "05-kept-mine")

            # A syntax error is marked before anything runs.
            type_after(dan, "model.py", "dan's change", "    def broken(:")
            expect(dan.locator("[data-ide]")).to_have_attribute("data-syntax-errors", "1")
            expect(dan.locator("[data-problems]")).to_be_visible()
            expect(dan.locator(".monaco-editor .squiggly-error").first).to_be_attached()
            shot(dan, "06-syntax-error")

            # A new file, named in the tree, is unsaved until the next save.
            dan.get_by_role("button", name="New", exact=True).click()
            dan.get_by_label("File name").fill("helpers.py")
            dan.keyboard.press("Enter")
            expect(dan.locator('[data-tree] [data-path="helpers.py"].dirty')).to_be_visible()
            expect(dan.locator('.ide-tab[data-path="helpers.py"]')).to_have_attribute("aria-selected", "true")
            shot(dan, "07-new-file")

            # Rename it, upload another and delete that one; the save has exactly what the tree shows.
            dan.locator('[data-tree] [data-path="helpers.py"]').hover()
            dan.get_by_title("Rename helpers.py").click()
            dan.get_by_label("File name").fill("utils.py")
            dan.keyboard.press("Enter")
            expect(dan.locator('[data-tree] [data-path="utils.py"]')).to_be_visible()
            expect(dan.locator('[data-tree] [data-path="helpers.py"]')).to_have_count(0)
            dan.locator("[data-upload]").set_input_files(
                files=[{"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n"}])
            expect(dan.locator('.ide-tab[data-path="notes.md"]')).to_have_attribute("aria-selected", "true")
            shot(dan, "08-renamed-and-uploaded")
            dan.once("dialog", lambda dialog: dialog.accept())
            dan.locator('[data-tree] [data-path="notes.md"]').hover()
            dan.get_by_title("Delete notes.md").click()
            expect(dan.locator('[data-tree] [data-path="notes.md"]')).to_have_count(0)
            dan.locator(".monaco-editor .view-lines").first.click()
            dan.keyboard.press("Control+s")
            expect(dan.locator("[data-ide]")).to_have_attribute("data-revision", "4")
        finally:
            browser.close()
    leave(acme, "greeter", *people.values())
    assert not errors, f"script errors on the page: {errors}"
    saved = ModelSource.objects.get(model__name="greeter")
    assert saved.revision == 4 and "# dan's change" in saved.files["model.py"]
    assert sorted(saved.files) == ["model.py", "requirements.txt", "utils.py", "words.json"]
