"""Write docs/roles.md from ``webapp/workspaces/scopes.py`` (the test suite checks it is current)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from webapp.workspaces.scopes import (
    KEY_SCOPE_DESCRIPTIONS,
    KEY_SCOPES,
    PERMISSIONS,
    ROLE_DESCRIPTIONS,
    ROLE_ORDER,
    ROLES,
)


def render() -> str:
    lines = [
        "# Roles, permissions and API key scopes",
        "",
        "Generated from `webapp/workspaces/scopes.py` by `python manage.py write_roles_doc`; do not edit by hand.",
        "",
        "## Roles",
        "",
        "| permission | " + " | ".join(ROLE_ORDER) + " |",
        "| --- | " + " | ".join("---" for _ in ROLE_ORDER) + " |",
    ]
    for perm, description in PERMISSIONS.items():
        marks = " | ".join("yes" if perm in ROLES[role] else "" for role in ROLE_ORDER)
        lines.append(f"| `{perm}`: {description} | {marks} |")
    lines += ["", *(f"- **{role}**: {ROLE_DESCRIPTIONS[role]}" for role in ROLE_ORDER), ""]
    lines += [
        "## API key scopes",
        "",
        "A key may do what its scopes allow *and* what its creator's current role allows. A member can",
        "only put on a key the scopes whose permissions their role has.",
        "",
        "| scope | what it is for | permissions |",
        "| --- | --- | --- |",
    ]
    for scope, perms in KEY_SCOPES.items():
        lines.append(f"| `{scope}` | {KEY_SCOPE_DESCRIPTIONS[scope]} | {', '.join(f'`{p}`' for p in sorted(perms))} |")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Write docs/roles.md from the role and scope tables."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Fail if docs/roles.md is out of date.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.BASE_DIR) / "docs" / "roles.md"
        text = render()
        if options["check"]:
            if not path.exists() or path.read_text() != text:
                raise SystemExit("docs/roles.md is out of date: run `python manage.py write_roles_doc`")
            return
        path.write_text(text)
        self.stdout.write(f"wrote {path}")
