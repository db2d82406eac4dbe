"""Template context shared by every page: the signed-in user's workspaces."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def podium(request: HttpRequest) -> dict[str, Any]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    from webapp.workspaces.access import workspaces_of

    return {"my_workspaces": list(workspaces_of(request.user))}
