"""``manage.py quota SLUG [--replicas N] [--cpu N] ... [--reset]``: show or set one workspace's quotas.

Quotas are the operator's: workspace admins see them on the settings page but cannot change them. Without
options the command prints each quota, its use and where its limit comes from.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.serving import quotas
from webapp.workspaces.models import Workspace


class Command(BaseCommand):
    help = "Show or set a workspace's quotas (defaults: the PODIUM_QUOTA_* settings)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        for name, quota in quotas.QUOTAS.items():
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name, metavar="N",
                                help=f"{quota.label} (default: {quota.setting})")
        parser.add_argument("--reset", action="store_true", help="drop this workspace's own quotas first")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=options["slug"]).first()
        if workspace is None:
            raise CommandError(f"no workspace {options['slug']!r}")
        own = {} if options["reset"] else dict(workspace.quotas or {})
        for name in quotas.QUOTAS:
            value = options.get(name)
            if value is not None:
                if value < 0:
                    raise CommandError(f"--{name.replace('_', '-')} must be 0 or more")
                own[name] = int(value) if value == int(value) else value
        if own != (workspace.quotas or {}):
            workspace.quotas = own
            workspace.save(update_fields=["quotas"])
        for row in quotas.report(workspace):
            source = "this workspace" if row["name"] in own else quotas.QUOTAS[row["name"]].setting
            self.stdout.write(f"{row['label']:<28} {row['shown']:<24} ({source})")
