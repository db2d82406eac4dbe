"""The model editor's pages: the editor of one model (``/w/<slug>/models/<name>/edit``) and the
template picker for a new model (``/w/<slug>/models/new``).

The pages are shells: the editor's script (``build/ide.js``, Monaco and its worker, loaded on the
editor page only) reads and writes everything through the model source API
(``/api/v1/workspaces/<slug>/models/<name>/...``) with the member's session. What a member may do
is decided by the API; the page only mirrors it, so that viewers and operators get a read-only
editor and no save, test or deploy buttons (``data-can-*`` on the editor's root).

Terms:
- *source*: a model's saved files, with a revision number, shared by the workspace.
- *draft*: one member's unsaved files of a model, kept on the server so a reload loses nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from webapp.serving.models import Model
from webapp.serving.serializers import endpoint_url
from webapp.workspaces.access import Access, scoped
from webapp.workspaces.views import page, workspace_page


def _api(access: Access, *parts: str) -> str:
    return "/".join([f"/api/v1/workspaces/{access.workspace.slug}", *parts])


def initial_files(access: Access, user: Any, model: Model) -> dict[str, Any]:
    """The source and the member's draft as ``GET .../source`` and ``GET .../draft`` answer them, written
    into the page so that the editor shows its files as soon as Monaco is up instead of asking then (a
    round trip after the script has run, about 100 ms). The script still asks when they are missing."""
    from webapp.ide import actions
    from webapp.ide import serializers as s
    from webapp.ide.models import Draft

    draft = None
    if access.can("models.write"):
        found = Draft.objects.filter(model=model, user=user).first()
        draft = s.DraftSerializer(found).data if found is not None else None
    return {"source": s.SourceSerializer(actions.source_of(model)).data, "draft": draft}


def editor_context(access: Access, model: Model) -> dict[str, Any]:
    """What the editor's script needs to start: its API base, the member's abilities, the endpoint."""
    return {
        "model": model,
        "model_api": _api(access, "models", model.name),
        "endpoint": endpoint_url(model.name),
        "podium_url": settings.PODIUM_URL,
        "try_url": reverse("ws-model-try", args=[access.workspace.slug, model.name]),
        "can_write": access.can("models.write"),
        "can_deploy": access.can("models.deploy"),
        "can_invoke": access.can("models.invoke"),
    }


@workspace_page(GET="models.read")
def model_editor(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    model = scoped(Model.objects.all(), access, name=name)
    context = {**editor_context(access, model), "initial": initial_files(access, request.user, model)}
    return page(request, access, "ide/editor.html", context, tab="models")


@workspace_page(GET="models.write")
def model_new(request: HttpRequest, access: Access) -> HttpResponse:
    context = {"templates_api": _api(access, "model-templates"), "models_api": _api(access, "models")}
    return page(request, access, "ide/new.html", context, tab="models")
