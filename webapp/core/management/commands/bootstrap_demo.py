"""Create (or reuse) the demo owner, workspace and API key that ``make up`` prints.

The secrets are written to the output file (``var/demo.json``) because they are
shown only once; a second run reuses them when they still work, so scripts
that read the file keep working across restarts.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from webapp.lib import keys
from webapp.workspaces import actions
from webapp.workspaces.access import Actor, workspace_for
from webapp.workspaces.models import ApiKey, Workspace

USERNAME = "demo"
WORKSPACE_SLUG = "demo"


class Command(BaseCommand):
    help = "Create or reuse the demo account, workspace and API key; write them to a JSON file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The URL Podium is served at.")
        parser.add_argument("--output", default="var/demo.json", help="Where to write the credentials.")

    def handle(self, *args: Any, **options: Any) -> None:
        output = Path(options["output"])
        previous: dict[str, Any] = {}
        if output.exists():
            try:
                previous = json.loads(output.read_text())
            except ValueError:
                previous = {}
        with transaction.atomic():
            demo = self._ensure(previous)
        demo["url"] = options["url"].rstrip("/")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(demo, indent=2) + "\n")
        output.chmod(0o600)
        self.stdout.write(f"demo credentials written to {output}")

    def _ensure(self, previous: dict[str, Any]) -> dict[str, Any]:
        user_model = get_user_model()
        user = user_model.objects.filter(username=USERNAME).first()
        password = previous.get("password")
        if user is None:
            password = secrets.token_urlsafe(12)
            user = user_model.objects.create_user(USERNAME, email="demo@example.com", password=password)
        elif not password or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
        actor = Actor(user=user, user_agent="bootstrap_demo")
        if not Workspace.objects.filter(slug=WORKSPACE_SLUG).exists():
            actions.create_workspace(actor, "Demo", slug=WORKSPACE_SLUG)
        access = workspace_for(actor, WORKSPACE_SLUG)
        api_key = previous.get("api_key")
        if not (api_key and keys.is_well_formed(api_key) and ApiKey.objects.filter(
            key_hash=keys.digest(api_key), workspace=access.workspace, revoked_at=None
        ).exists()):
            _, api_key = actions.create_api_key(actor, access, "demo key", ["read", "invoke", "deploy", "admin"])
        return {"username": USERNAME, "password": password, "workspace": WORKSPACE_SLUG, "api_key": api_key}
