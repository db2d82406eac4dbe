"""Every page fits at the widths people use: at 1280 and 1920 px no table hides a column behind a horizontal
scroll (every cell's box lies inside its table's visible box); at 1024 px a table or code block may scroll
inside its card; at every width nothing reaches past its card or makes the page scroll sideways.

The pages are filled the way a busy workspace fills them (long names, a split, failed versions, calls,
keys, invitations, an audit log) so that what overflows shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.browser_fixtures import *  # noqa: F403 - fixtures
from tests.conftest import Person
from tests.test_model_pages import call, make_model, make_version, route
from webapp.ide.models import ModelSource
from webapp.workspaces import actions as workspace_actions

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ["/w/acme/", "/w/acme/members", "/w/acme/keys", "/w/acme/models", "/w/acme/models/customer-churn-predictor",
         "/w/acme/models/customer-churn-predictor/versions/2", "/w/acme/audit", "/w/acme/settings",
         "/w/acme/models/new"]

# What overflows, in words; [] when the page fits. `strict`: no table may scroll sideways at all.
CHECK = """(strict) => {
  const problems = [];
  const visible = (el) => el.offsetParent !== null && el.getClientRects().length > 0;
  const name = (el) => (el.closest('[id],[data-testid],[data-fragment]') || el).getAttribute('id')
    || (el.closest('[data-testid]') || {getAttribute: () => ''}).getAttribute('data-testid') || el.className;
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth + 1)
    problems.push(`the page scrolls sideways (${page.scrollWidth} > ${page.clientWidth})`);
  for (const wrap of document.querySelectorAll('.table-wrap')) {
    if (!visible(wrap)) continue;
    const box = wrap.getBoundingClientRect();
    const card = (wrap.closest('.card') || wrap).getBoundingClientRect();
    if (box.right > card.right + 1) problems.push(`the table in ${name(wrap)} reaches past its card`);
    if (strict && wrap.scrollWidth > wrap.clientWidth + 1) {
      const hidden = [...wrap.querySelectorAll('th, td')]
        .filter((c) => c.getBoundingClientRect().right > box.right + 1);
      problems.push(`the table in ${name(wrap)} hides ${hidden.length} cells behind a scroll: `
        + hidden.slice(0, 3).map((c) => JSON.stringify(c.textContent.trim().slice(0, 30))).join(', '));
    }
  }
  for (const pre of document.querySelectorAll('pre')) {
    if (!visible(pre)) continue;
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(pre).overflowX);
    if (pre.scrollWidth > pre.clientWidth + 1 && !scrolls) problems.push(`a code block in ${name(pre)} is cut off`);
    const card = pre.closest('.card');
    if (card && pre.getBoundingClientRect().right > card.getBoundingClientRect().right + 1)
      problems.push(`a code block in ${name(pre)} reaches past its card`);
  }
  for (const card of document.querySelectorAll('.card')) {
    if (visible(card) && card.getBoundingClientRect().right > page.clientWidth + 1)
      problems.push(`the card ${name(card)} reaches past the page`);
  }
  return problems;
}"""


@pytest.fixture
def busy_workspace(alice: Person, acme: Any, member_of: Callable[[str, str], Person]) -> None:
    access = alice.access(acme)
    for n, role in enumerate(["developer", "operator", "viewer"]):
        member_of(f"a-member-with-a-rather-long-username-{n}", role)
    workspace_actions.create_invitation(alice.actor, access, "developer",
                                        email="someone.with.a.long.address@example.com")
    for name in ("production scoring service for the churn dashboard", "ci"):
        workspace_actions.create_api_key(alice.actor, access, name, ["read", "invoke", "deploy"])
    model = make_model(acme, name="customer-churn-predictor", description="Who is about to leave, scored nightly")
    ModelSource.objects.create(workspace=acme, model=model, files={}, sample_input={"inputs": [[0.3, 1.2, 5.0]]})
    v1 = make_version(model, 1)
    v2 = make_version(model, 2, requirements="scikit-learn==1.5.2\nnumpy==2.1.3")
    make_version(model, 3, status="failed", failed_step="load",
                 error="load() raised KeyError: 'a_feature_column_with_a_long_name' (model/feature_engineering.py:42)")
    route(alice, model, [(1, 100)])
    route(alice, model, [(1, 30), (2, 70)])
    for minutes in range(0, 50, 5):
        call(model, v2, minutes_ago=minutes)
        call(model, v1, status=422, error="predict() rejected the input: KeyError: 'inputs'", minutes_ago=minutes)


@pytest.fixture
def cookie(busy_workspace: None, alice: Person, podium_server: str) -> dict[str, str]:
    """alice's session, made before the browser starts (Django refuses database calls under its loop)."""
    client = Client()
    client.force_login(alice.user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": podium_server}


def test_every_page_fits_from_1024_to_1920_px(cookie: dict[str, str], browser: Any, podium_server: str,
                                              artifacts: Callable[[Any, str], Path]) -> None:
    found: dict[str, list[str]] = {}
    for width in (1024, 1280, 1920):
        context = browser.new_context(base_url=podium_server, viewport={"width": width, "height": 900})
        context.add_cookies([cookie])
        page = context.new_page()
        for path in PAGES:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            problems = page.evaluate(CHECK, width >= 1280)
            if problems:
                found[f"{path} at {width} px"] = problems
            if problems or width == 1280:  # each page at 1280 px, and any that does not fit, for a person to see
                artifacts(page, f"{width}-{path.strip('/').replace('/', '-')}")
        context.close()
    assert not found, "\n".join(f"{where}: {'; '.join(problems)}" for where, problems in found.items())
