"""Model pages: the model list, a model's page (routing, versions, metrics, calls, logs, "try it"),
and a version's page (deploy steps, error, logs).

Every page is a :func:`webapp.workspaces.views.workspace_page`: ``models.read``
to look, ``models.deploy`` to promote, split, roll back and stop, and
``models.invoke`` to call a model from the page. Writes go through
:mod:`webapp.serving.actions`; an :class:`ActionError` is shown on the form
that caused it, with the action's status code, never as a 500.

Terms:
- *routing*: what each alias sends where, ``[(version number, weight)]``.
- *try it*: a call made from the model page with the member's session
  instead of an API key; it goes to the production alias exactly as the
  gateway would send it, and is recorded like a gateway call (with no key).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils import timezone

from webapp.serving import actions, recorder, routing
from webapp.serving.api import METRICS_SQL
from webapp.serving.deploy import model_client
from webapp.serving.models import Alias, AliasRoute, Invocation, Model, ModelVersion
from webapp.serving.serializers import endpoint_url
from webapp.workspaces.access import Access, actor_from_request, scoped
from webapp.workspaces.actions import ActionError
from webapp.workspaces.views import page, workspace_page

METRICS_MINUTES = 60
RECENT_CALLS = 20
ARRAY_FLAVORS = ("sklearn", "torchscript", "torch_state")
STEP_LABELS = {"environment": "Environment", "start": "Start sandbox", "load": "Load model", "ready": "Ready check"}
RUNNING = ("queued", "building", "starting", "stopping")
MODEL_FRAGMENTS = {
    "routing": "serving/_routing.html",
    "versions": "serving/_versions.html",
    "forms": "serving/_forms.html",
    "metrics": "serving/_metrics.html",
    "calls": "serving/_calls.html",
    "log-versions": "serving/_log_versions.html",
}


# The model list -------------------------------------------------------------------


def _model_rows(access: Access) -> QuerySet[Model]:
    """Every model of the workspace with its production routes, newest version and calls (and failed calls,
    5xx) in the last hour, in a fixed number of queries however many models there are."""
    newest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-number")
    recent = Invocation.objects.filter(model=OuterRef("pk"), created_at__gte=timezone.now() - dt.timedelta(hours=1))
    calls = recent.order_by().values("model").annotate(n=Count("*")).values("n")
    failed = recent.filter(status_code__gte=500).order_by().values("model").annotate(n=Count("*")).values("n")
    production = Alias.objects.filter(name=actions.PRODUCTION).prefetch_related(
        Prefetch("routes", queryset=AliasRoute.objects.select_related("version").order_by("-weight")))
    return (
        Model.objects.filter(workspace=access.workspace)
        .annotate(
            latest_number=Subquery(newest.values("number")[:1]),
            latest_status=Subquery(newest.values("status")[:1]),
            calls_last_hour=Coalesce(Subquery(calls, output_field=IntegerField()), Value(0)),
            failed_last_hour=Coalesce(Subquery(failed, output_field=IntegerField()), Value(0)),
        )
        .prefetch_related(Prefetch("aliases", queryset=production, to_attr="production"))
    )


@workspace_page(GET="models.read")
def model_list(request: HttpRequest, access: Access) -> HttpResponse:
    rows = [ModelRow(model, _production_routes(model)) for model in _model_rows(access)]
    context = {"models": rows, "podium_url": settings.PODIUM_URL}
    return page(request, access, "serving/list.html", context, tab="models",
                fragments={"models": "serving/_model_table.html"})


def overview(access: Access, limit: int = 8) -> dict[str, Any]:
    """The workspace overview's part about models: the most called ones with their endpoints, and the
    versions that failed to deploy in the last week, each with the first line of its error."""
    rows = sorted((ModelRow(m, _production_routes(m)) for m in _model_rows(access)),
                  key=lambda row: (-row.model.calls_last_hour, row.model.name))  # type: ignore[attr-defined]
    failures = (ModelVersion.objects.filter(workspace=access.workspace, status="failed",
                                            created_at__gte=timezone.now() - dt.timedelta(days=7))
                .select_related("model").order_by("-created_at")[:5])
    return {"overview_models": rows[:limit], "model_count": len(rows),
            "recent_failures": [(v, (v.error or "").strip().splitlines()[0][:160] if v.error else "")
                                for v in failures],
            "podium_url": settings.PODIUM_URL}


@dataclass
class ModelRow:
    """A line of the model list: the model (annotated by :func:`_model_rows`) and its production routes."""

    model: Model
    production_routes: list[AliasRoute]


def _production_routes(model: Model) -> list[AliasRoute]:
    production: list[Alias] = model.__dict__.get("production", [])
    return list(production[0].routes.all()) if production else []


# A model's page ---------------------------------------------------------------------


@dataclass
class AliasView:
    """An alias as the page shows it: its routes, and what a rollback would restore."""

    name: str
    endpoint: str
    updated_at: dt.datetime
    routes: list[AliasRoute]
    previous: list[tuple[int, int]] | None
    history: int = 0


@dataclass
class VersionRow:
    """A version as the pages show it: its steps with timings, the aliases routing to it, what can be done."""

    version: ModelVersion
    steps: list[dict[str, Any]]
    routed_by: list[tuple[str, int]] = field(default_factory=list)
    split_weight: int | str = ""

    @property
    def in_progress(self) -> bool:
        return self.version.status in RUNNING

    @property
    def progress(self) -> str:
        """One short line for the steps: the step running or failed, else the time they took."""
        for step in self.steps:
            if step["status"] == "failed":
                return f"{step['label']} failed"
            if step["status"] == "running":
                return f"{step['label']}…"
        if self.steps and all(step["status"] == "done" for step in self.steps):
            return f"{sum(step['seconds'] or 0 for step in self.steps):.1f} s"
        return "Waiting" if self.in_progress else ""

    @property
    def can_stop(self) -> bool:
        return self.version.status == "ready" and not self.routed_by

    @property
    def can_delete(self) -> bool:
        return not self.routed_by and not self.in_progress


@dataclass
class ModelPage:
    model: Model
    versions: list[VersionRow]
    aliases: list[AliasView]
    ready: list[VersionRow] = field(default_factory=list)


def _alias_views(model: Model) -> list[AliasView]:
    aliases = Alias.objects.filter(model=model).prefetch_related(
        Prefetch("routes", queryset=AliasRoute.objects.select_related("version").order_by("-weight")), "changes")
    views = []
    for alias in aliases:
        routes = list(alias.routes.all())
        history = list(alias.changes.all())
        views.append(AliasView(alias.name, endpoint_url(model.name, alias=alias.name), alias.updated_at, routes,
                               actions.rollback_target(history), len(history)))
    views.sort(key=lambda a: (a.name != actions.PRODUCTION, a.name))
    return views


def _step_rows(version: ModelVersion) -> list[dict[str, Any]]:
    rows = []
    for step in version.steps or []:
        started = _parse_time(step.get("started_at"))
        finished = _parse_time(step.get("finished_at"))
        if started and (finished or step.get("status") == "running"):
            seconds: float | None = ((finished or timezone.now()) - started).total_seconds()
        else:
            seconds = None
        rows.append({"name": step["name"], "label": STEP_LABELS.get(step["name"], step["name"]),
                     "status": step.get("status", "pending"), "started_at": started, "finished_at": finished,
                     "seconds": seconds})
    return rows


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _model_page(model: Model) -> ModelPage:
    aliases = _alias_views(model)
    routed: dict[int, list[tuple[str, int]]] = {}
    for alias in aliases:
        for route in alias.routes:
            routed.setdefault(route.version_id, []).append((alias.name, route.weight))
    versions = [VersionRow(v, _step_rows(v), routed.get(v.pk, []))
                for v in ModelVersion.objects.filter(model=model).select_related("created_by")]
    ready = [row for row in versions if row.version.status == "ready"]
    return ModelPage(model, versions, aliases, ready)


def _metrics(model: Model, minutes: int = METRICS_MINUTES) -> dict[str, Any]:
    """Per version, one value per minute of the last ``minutes`` (requests and errors 0, latencies null
    where a minute had no calls), for the charts."""
    now = timezone.now().replace(second=0, microsecond=0)
    slots = [now - dt.timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    index = {int(slot.timestamp()): i for i, slot in enumerate(slots)}
    with connection.cursor() as cursor:
        cursor.execute(METRICS_SQL, [model.pk, slots[0]])
        rows = cursor.fetchall()
    series: dict[int | None, dict[str, Any]] = {}
    for minute, number, requests, errors, refused, p50, p95, p99 in rows:
        i = index.get(int(minute.timestamp()))
        if i is None:
            continue
        entry = series.setdefault(number, {
            "number": number, "label": f"v{number}" if number is not None else "no version",
            **{key: [0] * minutes for key in ("requests", "errors", "refused")},
            **{key: [None] * minutes for key in ("error_rate", "refused_rate", "p50", "p95", "p99")},
        })
        entry["requests"][i], entry["errors"][i], entry["refused"][i] = requests, errors, refused
        entry["error_rate"][i] = round(100 * errors / requests, 2) if requests else None
        entry["refused_rate"][i] = round(100 * refused / requests, 2) if requests else None
        entry["p50"][i], entry["p95"][i], entry["p99"][i] = (round(p, 2) for p in (p50, p95, p99))
    ordered = sorted(series.values(), key=lambda s: -(s["number"] or 0))
    for entry in ordered:
        entry["total"] = sum(entry["requests"])
        entry["total_errors"] = sum(entry["errors"])
        entry["total_refused"] = sum(entry["refused"])
        last = max((i for i, value in enumerate(entry["p50"]) if value is not None), default=None)
        entry["latest"] = {key: entry[key][last] for key in ("p50", "p95", "p99")} if last is not None else None
    return {"minutes": [int(slot.timestamp()) for slot in slots], "versions": ordered}


def _example_body(model: Model, version: ModelVersion | None) -> str:
    """The body "Try it" and the snippets start from: the model's own sample input (the editor's, else the
    version's podium.json ``sample_input`` or its Truss's ``model_metadata.example_model_input``), so the
    first call a member makes is one the model accepts."""
    try:
        sample = model.source.sample_input  # type: ignore[attr-defined]  # the editor's (webapp.ide)
    except ObjectDoesNotExist:
        sample = None
    manifest = version.manifest if version is not None else {}
    if sample is None:
        sample = manifest.get("sample_input")
    if sample is None:
        metadata = ((manifest.get("truss") or {}).get("config") or {}).get("model_metadata") or {}
        sample = metadata.get("example_model_input") if isinstance(metadata, dict) else None
    if sample is not None:
        return json.dumps(sample)
    if version is not None and version.flavor in ARRAY_FLAVORS:
        return '{"inputs": [[1.0, 2.0, 3.0]]}'
    return "{}"


def _examples(body: str) -> dict[str, str]:
    """The sample body as the form shows it, as a shell's single-quoted word, and as a Python literal."""
    return {"example_body": body, "example_shell": body.replace("'", "'\\''"),
            "example_python": repr(json.loads(body))}


def _model_context(access: Access, model: Model, **extra: Any) -> dict[str, Any]:
    data = _model_page(model)
    production = next((a for a in data.aliases if a.name == actions.PRODUCTION), None)
    serving = production.routes[0].version if production and production.routes else None
    newest = data.versions[0].version if data.versions else None
    logs_version = serving or newest
    metrics = _metrics(model)
    posted = extra.get("posted", {})
    weights = {r.version_id: r.weight for r in production.routes} if production else {}
    for row in data.ready:
        if posted.get("form") == "split":
            row.split_weight = posted.get(f"weight-{row.version.number}", "")
        else:
            row.split_weight = weights.get(row.version.pk, "")
    return {
        "model": model,
        "versions": data.versions,
        "aliases": data.aliases,
        "ready_versions": data.ready,
        "alias_names": sorted({a.name for a in data.aliases} | {actions.PRODUCTION, "staging"}),
        "endpoint": endpoint_url(model.name),
        **_examples(_example_body(model, serving or newest)),
        "has_production": bool(production and production.routes),
        "metrics": metrics,
        "metrics_total": sum(v["total"] for v in metrics["versions"]),
        "calls": Invocation.objects.filter(model=model).select_related("version", "api_key")[:RECENT_CALLS],
        "logs_version": logs_version,
        "podium_url": settings.PODIUM_URL,
        "errors": {},
        "posted": {},
        **extra,
    }


def _render_model(request: HttpRequest, access: Access, model: Model, status: int = 200,
                  **extra: Any) -> HttpResponse:
    return page(request, access, "serving/model.html", _model_context(access, model, **extra), tab="models",
                fragments=MODEL_FRAGMENTS, status=status)


def _model(access: Access, name: str) -> Model:
    return scoped(Model.objects.all(), access, name=name)


@workspace_page(GET="models.read")
def model_detail(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    return _render_model(request, access, _model(access, name))


def _form_failed(request: HttpRequest, access: Access, model: Model, form: str, error: ActionError) -> HttpResponse:
    return _render_model(request, access, model, status=error.status, errors={form: error.message},
                         posted={**request.POST.dict(), "form": form})


def _back(access: Access, model: Model) -> HttpResponse:
    return redirect("ws-model", access.workspace.slug, model.name)


def _describe(routes: list[tuple[int, int]]) -> str:
    if len(routes) == 1:
        return f"version {routes[0][0]}"
    return ", ".join(f"v{number} {weight}%" for number, weight in routes)


@workspace_page(POST="models.deploy")
def model_promote(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    """Send all of an alias's traffic to one version."""
    model = _model(access, name)
    alias = request.POST.get("alias", "").strip() or actions.PRODUCTION
    try:
        number = _whole(request.POST.get("version", ""), "Choose a version to promote.")
        actions.set_routes(actor_from_request(request), access, model, alias, [(number, 100)])
    except ActionError as error:
        return _form_failed(request, access, model, "promote", error)
    messages.success(request, f"{alias} now sends all traffic to version {number}.")
    return _back(access, model)


def _whole(value: str, message: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ActionError(message) from None


def _split_routes(data: Any) -> list[tuple[int, int]]:
    routes = []
    for key, value in data.items():
        if not key.startswith("weight-") or not str(value).strip():
            continue
        number = _whole(key.removeprefix("weight-"), "Unknown version in the split.")
        weight = _whole(value, f"The weight of version {number} must be a whole number of percent.")
        if weight:
            routes.append((number, weight))
    if len(routes) < 2:
        raise ActionError("Give two or more versions a weight to split traffic; to send all of it to one "
                          "version, promote it.", field="routes")
    return sorted(routes)


@workspace_page(POST="models.deploy")
def model_split(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    """Split an alias's traffic across ready versions by weight (percent, adding up to 100)."""
    model = _model(access, name)
    alias = request.POST.get("alias", "").strip() or actions.PRODUCTION
    try:
        routes = _split_routes(request.POST)
        actions.set_routes(actor_from_request(request), access, model, alias, routes)
    except ActionError as error:
        return _form_failed(request, access, model, "split", error)
    messages.success(request, f"{alias} now splits traffic: {_describe(routes)}.")
    return _back(access, model)


@workspace_page(POST="models.deploy")
def model_rollback(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    """Restore an alias's previous routing (no rebuild)."""
    model = _model(access, name)
    alias = request.POST.get("alias", "").strip() or actions.PRODUCTION
    try:
        moved = actions.rollback(actor_from_request(request), access, model, alias)
    except ActionError as error:
        messages.error(request, error.message)
        return _render_model(request, access, model, status=error.status)
    messages.success(request, f"Rolled {alias} back to {_describe(actions.current_routes(moved))}.")
    return _back(access, model)


@workspace_page(POST="models.deploy")
def version_stop(request: HttpRequest, access: Access, name: str, number: int) -> HttpResponse:
    version = _version(access, name, number)
    try:
        actions.stop_version(actor_from_request(request), access, version)
    except ActionError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Stopped version {number} of {name}.")
    if request.POST.get("from") == "version":
        return redirect("ws-model-version", access.workspace.slug, name, number)
    return _back(access, version.model)


@workspace_page(POST="models.deploy")
def version_delete(request: HttpRequest, access: Access, name: str, number: int) -> HttpResponse:
    version = _version(access, name, number)
    try:
        actions.delete_version(actor_from_request(request), access, version)
    except ActionError as error:
        messages.error(request, error.message)
        if request.POST.get("from") == "version":
            return redirect("ws-model-version", access.workspace.slug, name, number)
    else:
        messages.success(request, f"Deleted version {number} of {name}.")
    return _back(access, version.model)


@workspace_page(POST="models.deploy")
def model_delete(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    """Delete the model once its name is typed (the form's ``confirm``)."""
    model = _model(access, name)
    if request.POST.get("confirm", "").strip() != model.name:
        messages.error(request, f"Type the model's name, {model.name}, to delete it.")
        return _back(access, model)
    try:
        actions.delete_model(actor_from_request(request), access, model)
    except ActionError as error:
        messages.error(request, error.message)
        return _back(access, model)
    messages.success(request, f"Deleted {name} and its versions.")
    return redirect("ws-models", access.workspace.slug)


# Calling a model from its page ------------------------------------------------------------


@dataclass
class TryResult:
    status: int
    body: bytes
    version_id: int | None = None
    version_number: int | None = None
    error: str = ""


def _forward(access: Access, model: Model, alias: str, body: bytes) -> TryResult:
    """Send ``body`` to a replica of ``alias`` as the gateway would; errors read like the gateway's."""
    try:
        route = routing.resolve(access.workspace.pk, model.name, alias)
    except routing.NotFound as exc:
        return TryResult(exc.status, _detail(str(exc)), error=str(exc))
    target = route.pick()
    address = target.pick_address() if target else None
    if target is None or address is None:
        message = f"No replica of '{model.name}' is ready yet; retry shortly."
        return TryResult(503, _detail(message), error=message)
    result = TryResult(0, b"", target.version_id, target.number)
    timeout = settings.PODIUM_PREDICT_TIMEOUT_S
    try:
        with model_client(address, timeout=timeout) as client:
            response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    except httpx.TimeoutException:
        result.status, result.body, result.error = 504, _detail(f"The model did not answer within {timeout} s."), (
            "timeout")
    except httpx.TransportError as exc:
        result.status, result.body = 502, _detail("The model server dropped the call; it is being restarted.")
        result.error = f"{type(exc).__name__}: {exc}"
    else:
        result.status, result.body = response.status_code, response.content
        result.error = response.text[:500] if response.status_code >= 400 else ""
    return result


def _detail(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()


@workspace_page(POST="models.invoke")
def model_try(request: HttpRequest, access: Access, name: str) -> HttpResponse:
    """Call the model's production alias (or ``?alias=``) with the JSON request body, as the signed-in member.

    Answers JSON ``{status, latency_ms, version, request_id, answer}`` with the model's status code, and
    records the call like the gateway does."""
    model = _model(access, name)
    body = request.body
    if len(body) > settings.PODIUM_MAX_REQUEST_BYTES:
        return JsonResponse({"detail": f"The request body is larger than {settings.PODIUM_MAX_REQUEST_BYTES} bytes."},
                            status=413)
    if not body.strip():
        return JsonResponse({"detail": "Send a JSON body, e.g. {}."}, status=400)
    try:
        json.loads(body)
    except ValueError as exc:
        return JsonResponse({"detail": f"The request body is not JSON: {exc}."}, status=400)
    alias = request.GET.get("alias") or actions.PRODUCTION
    request_id = secrets.token_hex(8)
    started = time.perf_counter()
    result = _forward(access, model, alias, body)
    latency_ms = (time.perf_counter() - started) * 1000
    recorder.record(
        workspace_id=access.workspace.pk, model_id=model.pk, version_id=result.version_id, alias=alias,
        api_key_id=None, request_id=request_id, status_code=result.status, latency_ms=latency_ms,
        request_bytes=len(body), response_bytes=len(result.body), error=result.error[:500],
    )
    try:
        answer: Any = json.loads(result.body)
    except ValueError:
        answer = result.body.decode(errors="replace")
    payload = {"status": result.status, "latency_ms": round(latency_ms, 2), "version": result.version_number,
               "alias": alias, "request_id": request_id, "answer": answer}
    response = JsonResponse(payload, status=result.status, json_dumps_params={"ensure_ascii": False})
    response["X-Request-Id"] = request_id
    return response


# A version's page --------------------------------------------------------------------------


def _version(access: Access, name: str, number: int) -> ModelVersion:
    return scoped(ModelVersion.objects.select_related("model", "created_by"), access,
                  model__name=name, number=number)


@workspace_page(GET="models.read")
def version_detail(request: HttpRequest, access: Access, name: str, number: int) -> HttpResponse:
    version = _version(access, name, number)
    routes = list(AliasRoute.objects.filter(version=version).select_related("alias").order_by("alias__name"))
    row = VersionRow(version, _step_rows(version), [(r.alias.name, r.weight) for r in routes])
    context = {
        "model": version.model,
        "version": version,
        "row": row,
        "routes": routes,
        "endpoint": endpoint_url(name, number),
        "requirements": [line for line in version.requirements.splitlines() if line.strip()],
        "log_source": "build" if version.status in ("queued", "building") or version.failed_step == "environment"
        else "runtime",
        "failed_row": next((s for s in row.steps if s["name"] == version.failed_step), None),
        "restarts": routing.replica_restarts(version.sandbox) if version.status == "ready" else [],
    }
    return page(request, access, "serving/version.html", context, tab="models",
                fragments={"version": "serving/_version_state.html"})
