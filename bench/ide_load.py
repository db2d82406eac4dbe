"""How long the model editor takes to be ready for typing, and how much JavaScript it loads.

Launches Chromium (Playwright, Debian's /usr/bin/chromium) against a running Podium, signs in, and
opens ``/w/<workspace>/models/<model>/edit`` N times. *Ready* is the moment the editor page sets
``window.podiumIde.readyAt``: Monaco has the model's file attached and can take the focus (checked
after each run). Times are ``performance.now()`` at that moment, i.e. from the start of the
navigation. Two cases:

- cold: a fresh browser context each run (no HTTP cache: every script is downloaded again);
- warm: the same context, navigating again (what a member sees the second time).

With ``--test-runs N`` (default 5; 0 skips it) it also clicks "Test" on the model's sample input N times
after a first, unmeasured run (which may build the environment), and prints click -> first output line
and click -> answer, measured in the page. That needs a Podium whose sandboxes run (``make up``).

It also prints the JavaScript each page loads (page scripts and workers, decoded bytes and bytes on
the wire): the editor page against the model page, which does not load the editor.

Usage (a running Podium, e.g. ``make up``; defaults from var/demo.json):

    .venv/bin/python bench/ide_load.py
    .venv/bin/python bench/ide_load.py --url http://127.0.0.1:8000 --username ada --password ... \\
        --workspace demo --model bench-editor --runs 10

The model is created from ``--template`` ("custom" by default) when it does not exist.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
TARGET_S = 1.5
TEST_TARGET_S = 1.0


def sign_in(context: Any, url: str, username: str, password: str) -> None:
    page = context.new_page()
    page.goto(f"{url}/accounts/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if "/accounts/login" in page.url:
        raise SystemExit(f"could not sign in as {username}")
    page.close()


def ensure_model(context: Any, url: str, workspace: str, model: str, template: str) -> None:
    api = f"{url}/api/v1/workspaces/{workspace}/models"
    if context.request.get(f"{api}/{model}").ok:
        return
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    made = context.request.post(api, data=json.dumps({"name": model, "template": template}),
                                headers={"Content-Type": "application/json", "X-CSRFToken": token,
                                         "Referer": url})
    if made.status != 201:
        raise SystemExit(f"could not create {model}: {made.status} {made.text()[:300]}")


def ready_ms(page: Any, editor_url: str) -> float:
    """Navigate to the editor and return ms from navigation start to editor ready."""
    page.goto(editor_url, wait_until="commit")
    page.wait_for_function("window.podiumIde && window.podiumIde.readyAt", timeout=30_000)
    ready = page.evaluate("window.podiumIde.readyAt")
    focused = page.evaluate("(() => { const e = window.podiumIde.editor; e.focus(); "
                            "return e.hasTextFocus() && e.getModel() !== null; })()")
    if not focused:
        raise SystemExit("the editor was ready but could not take the focus")
    return float(ready)


CLICK_TEST = """async () => {
  const panel = document.querySelector("[data-test-panel]");
  const output = panel.querySelector("[data-run-output]");
  const started = performance.now();
  let first = null;
  document.querySelector('[data-action="test"]').click();
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no answer within 120 s")), 120000);
    const observer = new MutationObserver(() => {
      if (first === null && output.childElementCount > 0) first = performance.now() - started;
      const status = panel.dataset.runStatus;
      if (status === "passed" || status === "failed") {
        clearTimeout(timer);
        observer.disconnect();
        const timing = panel.querySelector("[data-run-timing]")?.textContent ?? "";
        resolve({ first: first ?? performance.now() - started, done: performance.now() - started, status,
                  warm: timing.includes("warm start") });
      }
    });
    observer.observe(panel, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}"""


def test_clicks(browser: Any, state: Any, editor_url: str, runs: int) -> list[dict[str, Any]]:
    """Click "Test" ``runs`` times after one unmeasured run; each answer as measured in the page."""
    context = browser.new_context(storage_state=state)
    page = context.new_page()
    ready_ms(page, editor_url)
    results = []
    for i in range(runs + 1):
        result = page.evaluate(CLICK_TEST)
        if result["status"] != "passed":
            raise SystemExit(f"the test run {result['status']}: {page.locator('[data-run-traceback]').text_content()}")
        if i:
            results.append(result)
        else:
            wait_for_warm_runner(page, editor_url)
    context.close()
    return results


def wait_for_warm_runner(page: Any, editor_url: str, timeout_s: float = 120) -> None:
    """After the first run, wait until the member's warm runner for this code is ready (the editor asks for
    one when it opens, and a run that found none starts one), so the measured clicks are the warm case."""
    api = editor_url.replace("/w/", "/api/v1/workspaces/", 1).removesuffix("/edit")
    ask = """async (api) => {
      const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
      const files = window.podiumIde.files ? window.podiumIde.files() : undefined;
      const response = await fetch(`${api}/warm-runner`, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify(files ? { files } : {}) });
      return (await response.json()).status;
    }"""
    for _ in range(int(timeout_s * 2)):
        state = page.evaluate(ask, api)
        if state in ("ready", "off"):
            return
        page.wait_for_timeout(500)
    raise SystemExit("the warm runner did not become ready")


class ScriptBytes:
    """Sums the JavaScript responses (page scripts and workers) seen by a context."""

    def __init__(self, context: Any) -> None:
        self.decoded = 0
        self.wire = 0
        self.files: list[str] = []
        context.on("response", self.seen)

    def seen(self, response: Any) -> None:
        kind = response.request.resource_type
        name = response.url.split("?")[0]
        if not (kind == "script" or name.endswith(".js")) or response.status >= 300:
            return
        body = response.body()
        self.decoded += len(body)
        self.wire += int(response.headers.get("content-length") or len(body))
        self.files.append(name.rsplit("/", 1)[-1])


def js_of(browser: Any, state: Any, url: str, wait: str | None) -> ScriptBytes:
    context = browser.new_context(storage_state=state)
    counter = ScriptBytes(context)
    page = context.new_page()
    page.goto(url, wait_until="load")
    if wait:
        page.wait_for_function(wait, timeout=30_000)
    page.wait_for_timeout(500)  # the editor's worker starts after the editor
    context.close()
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--workspace")
    parser.add_argument("--model", default="bench-editor")
    parser.add_argument("--template", default="custom", help="the template of the model when it is created")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--test-runs", type=int, default=5)
    args = parser.parse_args()
    demo_file = ROOT / "var" / "demo.json"
    demo = json.loads(demo_file.read_text()) if demo_file.exists() else {}
    url = (args.url or demo["url"]).rstrip("/")
    username, password = args.username or demo["username"], args.password or demo["password"]
    workspace = args.workspace or demo["workspace"]
    editor_url = f"{url}/w/{workspace}/models/{args.model}/edit"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            setup = browser.new_context()
            sign_in(setup, url, username, password)
            ensure_model(setup, url, workspace, args.model, args.template)
            state = setup.storage_state()
            setup.close()

            cold = []
            for _ in range(args.runs):
                context = browser.new_context(storage_state=state)
                cold.append(ready_ms(context.new_page(), editor_url))
                context.close()
            context = browser.new_context(storage_state=state)
            page = context.new_page()
            ready_ms(page, editor_url)
            warm = [ready_ms(page, editor_url) for _ in range(args.runs)]
            context.close()

            editor_js = js_of(browser, state, editor_url, "window.podiumIde && window.podiumIde.readyAt")
            page_js = js_of(browser, state, f"{url}/w/{workspace}/models/{args.model}", None)
            clicks = test_clicks(browser, state, editor_url, args.test_runs) if args.test_runs else []
        finally:
            browser.close()

    print(f"\nmodel editor: navigation -> ready for typing, {args.runs} runs each ({url})")
    print(f"{'case':<36}{'median ms':>10}{'min ms':>10}{'max ms':>10}")
    for label, values in (("cold (new context, no HTTP cache)", cold), ("warm (same context)", warm)):
        print(f"{label:<36}{statistics.median(values):>10.0f}{min(values):>10.0f}{max(values):>10.0f}")
    verdict = "within" if statistics.median(cold) <= TARGET_S * 1000 else "OVER"
    print(f"target <= {TARGET_S * 1000:.0f} ms: cold median {verdict}")
    if clicks:
        print(f"\n\"Test\" on a warm environment ({args.model}), {len(clicks)} runs")
        print(f"{'case':<36}{'median ms':>10}{'min ms':>10}{'max ms':>10}")
        for label, key in (("click -> first output line", "first"), ("click -> answer", "done")):
            values = [c[key] for c in clicks]
            print(f"{label:<36}{statistics.median(values):>10.0f}{min(values):>10.0f}{max(values):>10.0f}")
        warm_starts = sum(1 for c in clicks if c.get("warm"))
        verdict = "within" if statistics.median(c["done"] for c in clicks) <= TEST_TARGET_S * 1000 else "OVER"
        print(f"{warm_starts} of {len(clicks)} runs started in a warm runner; "
              f"target <= {TEST_TARGET_S * 1000:.0f} ms click -> answer: median {verdict}")
    print(f"\nJavaScript loaded{'':<27}{'decoded KiB':>12}{'wire KiB':>10}  files")
    for label, counted in (("editor page (/edit)", editor_js), ("model page (no editor)", page_js)):
        print(f"{label:<44}{counted.decoded / 1024:>12.0f}{counted.wire / 1024:>10.0f}  "
              f"{', '.join(sorted(set(counted.files)))}")


if __name__ == "__main__":
    main()
