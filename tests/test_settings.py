"""Settings come from the environment, fail loudly on bad values, and pass Django's deploy checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from webapp.lib.env import ImproperEnv, envbool, envint, envsecret

ROOT = Path(__file__).resolve().parent.parent


def test_envbool_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("PODIUM_X", "maybe")
    with pytest.raises(ImproperEnv, match="PODIUM_X='maybe' is not a boolean"):
        envbool("PODIUM_X", False)
    monkeypatch.setenv("PODIUM_X", "yes")
    assert envbool("PODIUM_X", False) is True


def test_envint_names_the_variable(monkeypatch):
    monkeypatch.setenv("PODIUM_N", "ten")
    with pytest.raises(ImproperEnv, match="PODIUM_N"):
        envint("PODIUM_N", 1)


def test_envsecret_reads_a_file(monkeypatch, tmp_path):
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    monkeypatch.setenv("PODIUM_S_FILE", str(path))
    assert envsecret("PODIUM_S") == "s3cret"
    monkeypatch.setenv("PODIUM_S_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperEnv, match="PODIUM_S_FILE"):
        envsecret("PODIUM_S")


def test_deploy_checks_are_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "PODIUM_PRODUCTION": "1",
        "PODIUM_SECRET_KEY": secrets.token_urlsafe(60),
        "PODIUM_URL": "https://podium.example.com",
        "PODIUM_ALLOWED_HOSTS": "podium.example.com",
        "PODIUM_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**os.environ, "PODIUM_PRODUCTION": "1", "PODIUM_VAR_DIR": str(tmp_path)}
    env.pop("PODIUM_SECRET_KEY", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "PODIUM_SECRET_KEY" in result.stderr


def test_roles_doc_matches_the_scope_tables():
    from webapp.core.management.commands.write_roles_doc import render

    assert (ROOT / "docs" / "roles.md").read_text() == render(), "run `python manage.py write_roles_doc`"


def test_every_task_is_on_podiums_celery_app_in_any_process():
    """A web process that never imported ``workers`` must still queue tasks on Podium's broker."""
    code = (
        "import django; django.setup()\n"
        "from webapp.ide.tasks import run_test\n"
        "from workers.tasks import deploy_version\n"
        "assert run_test.app.main == deploy_version.app.main == 'podium', run_test.app.main\n"
        "run_test.app.loader.import_default_modules()\n"
        "assert 'webapp.ide.tasks.run_test' in run_test.app.tasks\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
