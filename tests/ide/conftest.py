"""Real sandboxes for test runs and deploys from the editor: the ``serving`` fixture of
tests/conftest.py (one sandbox supervisor for the session, Celery tasks run inline), under the name
these tests use."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sandboxes(serving: Path) -> Path:
    return serving
