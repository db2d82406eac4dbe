"""One rule for model names everywhere a user types one, and every HTML pattern is a regular expression a
browser accepts (Chromium compiles `pattern` with the `v` flag, where an unescaped `-` ending a class is an
error and the check is silently dropped)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from podium.bundle import NAME

from webapp.serving.actions import NAME_RE

ROOT = Path(__file__).resolve().parents[1]


def test_the_client_and_the_server_accept_the_same_model_names():
    assert NAME_RE.pattern == f"^{NAME}$"


def test_every_html_pattern_compiles_as_a_browser_compiles_it():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (make test installs the front end with it)")
    patterns = sorted({m for path in (ROOT / "webapp" / "templates").rglob("*.html")
                       for m in re.findall(r'pattern="([^"]+)"', path.read_text())})
    assert patterns, "no pattern attributes found"
    script = "for (const p of JSON.parse(process.argv[1])) new RegExp(`^(?:${p})$`, 'v');"
    done = subprocess.run([node, "-e", script, json.dumps(patterns)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
