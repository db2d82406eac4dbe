"""The invocation gateway: ``POST /v1/models/<name>/...predict``, in front of Django.

It is a plain ASGI app so a prediction does not pay for Django's middleware
stack: it authenticates the API key, resolves alias/version to a replica,
forwards the JSON body to the model server over the sandbox's socket, and
answers with the model's response plus ``X-Request-Id``. Every other path goes
to Django. Errors are JSON with a ``detail`` that says what to do:

- 401 bad key; 403 key without the ``invoke`` scope; 404 unknown model/alias/version
- 405 not POST; 413 body too large; 415 not JSON (nothing is ever unpickled)
- 502 the replica dropped the call (it is being restarted; when it died of a limit, such as its
  memory, the answer names the limit), or no replica of the version could take it; 503 + Retry-After
  while no replica is ready; 504 the model took longer than the timeout

Failover: a call whose connection a replica refuses or resets before anything was sent (its accept
queue is full, or it just died), or that a model server being recycled turned away without running
it (``X-Podium-Not-Run``: it was waiting behind a predict() that hung), is handed to the next ready
replica of the same version; such a replica is tried last for ``DOWN_S`` seconds. A call that a
replica ran is never sent twice.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed

from webapp.core import invalidation
from webapp.serving import recorder, routing
from webapp.serving.upstream import Upstream, UpstreamError, UpstreamStream, UpstreamUnreachable
from webapp.workspaces import key_cache
from webapp.workspaces.auth import bearer_token

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PATH = re.compile(
    r"^/v1/models/(?P<name>[a-z0-9][a-z0-9-]*)/"
    r"(?:versions/(?P<number>[0-9]{1,9})/|aliases/(?P<alias>[a-z][a-z0-9-]*)/)?predict/?$"
)


# The gateway waits this much longer than the predict timeout, so that the model server's own 504
# (which names the hung predict() and recycles the replica) is what the caller gets.
TIMEOUT_GRACE_S = 2.0
# How long a dropped call waits for the executor to say which limit, if any, the replica hit.
EXPLAIN_S = 0.8
# How long a replica that refused a connection is tried after the others (about one route refresh).
DOWN_S = 1.0

PREDICTIONS = prometheus_client.Counter(
    "podium_predictions", "Calls through the gateway", ["workspace", "model", "version", "status"]
)
FAILOVERS = prometheus_client.Counter(
    "podium_gateway_failovers", "Calls handed to another replica because one could not take them"
)
LATENCY = prometheus_client.Histogram(
    "podium_prediction_latency_seconds", "Gateway latency of a call, from request to answer",
    ["workspace", "model", "version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class GatewayError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


async def _authenticate(header: str) -> key_cache.Principal:
    token = bearer_token(header) if header else None
    if token is None:
        raise GatewayError(401, "Send an API key with the invoke scope as 'Authorization: Bearer pod_...'.")
    principal = key_cache.peek(token)
    if principal is None:
        try:
            principal = await sync_to_async(key_cache.lookup, thread_sensitive=False)(token)
        except AuthenticationFailed as exc:
            raise GatewayError(401, str(exc.detail)) from None
    if "models.invoke" not in principal.perms:
        raise GatewayError(403, principal.cannot_invoke
                           or "This API key cannot call models: use a key with the 'invoke' scope.")
    return principal


class Gateway:
    def __init__(self, fallback: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.fallback = fallback
        self.upstream = Upstream()
        self.refreshing: set[tuple[int, str, str | None, int | None]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.down: dict[str, float] = {}  # address -> until when it is tried last

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.handle(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/metrics":
            await self.metrics(scope, send)
        else:
            await self.fallback(scope, receive, send)

    async def metrics(self, scope: Scope, send: Send) -> None:
        """Prometheus metrics. They name every workspace's models, so they are not public: with
        ``PODIUM_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``; without it, only for
        clients on this host (a Prometheus agent beside Podium)."""
        token = settings.PODIUM_METRICS_TOKEN
        headers = dict(scope["headers"])
        client_host = (scope.get("client") or ("", 0))[0]
        if token:
            allowed = secrets.compare_digest(headers.get(b"authorization", b""), f"Bearer {token}".encode())
        else:
            allowed = client_host in ("127.0.0.1", "::1")
        if not allowed:
            status, body, content_type = 401, (
                b'{"detail": "Set PODIUM_METRICS_TOKEN and send it as a bearer token, '
                b'or scrape /metrics from the Podium host."}'), b"application/json"
        else:
            status, body = 200, prometheus_client.generate_latest()
            content_type = prometheus_client.CONTENT_TYPE_LATEST.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        context: dict[str, Any] = {"request_id": request_id}
        try:
            status, body, extra = await self._predict(scope, receive, headers, context)
        except GatewayError as error:
            status, body, extra = error.status, json.dumps({"detail": error.detail}).encode(), error.headers
        extra = {**extra, "x-request-id": request_id}
        if isinstance(body, UpstreamStream):
            size = await self._relay(send, status, body, extra)
        else:
            size = len(body)
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in extra.items()),
            ]})
            await send({"type": "http.response.body", "body": body})
        if "model_id" in context:
            labels = (str(context["workspace_id"]), context["model_name"], str(context.get("version_number", "")))
            PREDICTIONS.labels(*labels, str(status)).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - started)
            recorder.record(
                workspace_id=context["workspace_id"], model_id=context["model_id"],
                version_id=context.get("version_id"), alias=context.get("alias", ""),
                api_key_id=context["api_key_id"], request_id=request_id, status_code=status,
                latency_ms=(time.perf_counter() - started) * 1000, request_bytes=context.get("request_bytes", 0),
                response_bytes=size, error=context.get("error", "")[:500] if status >= 400 else "",
            )

    @staticmethod
    async def _relay(send: Send, status: int, stream: UpstreamStream, extra: dict[str, str]) -> int:
        """A streamed answer goes on to the caller chunk by chunk (the ASGI server sends it chunked); the
        call is recorded once the stream ends, with its latency to the last chunk."""
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", stream.content_type.encode("latin-1")),
            *((k.encode(), v.encode()) for k, v in extra.items()),
        ]})
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return stream.size

    async def _predict(
        self, scope: Scope, receive: Receive, headers: dict[str, str], context: dict[str, Any]
    ) -> tuple[int, bytes | UpstreamStream, dict[str, str]]:
        match = PATH.match(scope["path"])
        if match is None:
            raise GatewayError(404, "Not found. Call POST /v1/models/<name>/predict, "
                                    "/v1/models/<name>/versions/<n>/predict or /v1/models/<name>/aliases/<a>/predict.")
        if scope["method"] != "POST":
            raise GatewayError(405, "Use POST with a JSON body.", {"allow": "POST"})
        if not invalidation.listening():
            listener = asyncio.get_running_loop().create_task(invalidation.listen_forever())
            self.tasks.add(listener)
            listener.add_done_callback(self.tasks.discard)
        principal = await _authenticate(headers.get("authorization", ""))
        context.update(workspace_id=principal.workspace_id, api_key_id=principal.api_key_id)
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":  # any case
            raise GatewayError(415, "Send the request body as JSON with 'Content-Type: application/json'.")
        body = await self._read_body(receive, headers)
        context["request_bytes"] = len(body)
        number = int(match["number"]) if match["number"] else None
        route_args = (principal.workspace_id, match["name"], match["alias"], number)
        route, fresh = routing.peek(*route_args)
        if route is None:
            try:
                route = await sync_to_async(routing.resolve, thread_sensitive=False)(*route_args)
            except routing.NotFound as exc:
                raise GatewayError(exc.status, str(exc)) from None
        elif not fresh:
            self._refresh_in_background(route_args)
        context.update(model_id=route.model_id, model_name=route.model_name, alias=route.alias)
        target = route.pick()
        if target is None:
            raise GatewayError(503, f"No replica of '{route.model_name}' is ready yet; retry shortly.",
                               {"retry-after": "5"})
        context.update(version_id=target.version_id, version_number=target.number)
        status, answer = await self._hand_off(target, body, context)
        return status, answer, {"x-podium-model-version": str(target.number)}

    async def _limit_hit(self, sandbox: dict[str, Any] | None) -> str | None:
        """The limit the replica that dropped a call hit, once the executor has seen it end
        (usually milliseconds), or None after ``EXPLAIN_S``."""
        deadline = time.monotonic() + EXPLAIN_S
        while sandbox:
            ended, limit = await sync_to_async(routing.replica_ended, thread_sensitive=False)(sandbox)
            if ended or time.monotonic() > deadline:
                return limit
            await asyncio.sleep(0.05)
        return None

    def _refresh_in_background(self, route_args: tuple[int, str, str | None, int | None]) -> None:
        """Refresh a stale route once (single flight) without making any call wait for it."""
        if route_args in self.refreshing:
            return
        self.refreshing.add(route_args)

        async def refresh() -> None:
            try:
                await sync_to_async(routing.resolve, thread_sensitive=False)(*route_args)
            except routing.NotFound:
                routing.invalidate(route_args[0], route_args[1])
            finally:
                self.refreshing.discard(route_args)

        task = asyncio.get_running_loop().create_task(refresh())
        self.tasks.add(task)  # the loop keeps only a weak reference to tasks
        task.add_done_callback(self.tasks.discard)

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        limit = settings.PODIUM_MAX_REQUEST_BYTES
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise GatewayError(413, f"The request body is larger than {limit} bytes.")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _hand_off(self, target: routing.Target, body: bytes,
                        context: dict[str, Any]) -> tuple[int, bytes | UpstreamStream]:
        """Send the call to the first replica that takes it; replicas that refused lately go last."""
        addresses = target.candidates()
        now = time.monotonic()
        for address in [a for a, until in self.down.items() if until < now]:
            del self.down[address]
        ordered = sorted(addresses, key=lambda a: self.down.get(a, 0.0) > now)  # stable: round robin kept
        for address in ordered:
            try:
                return await self._forward(address, body, context, target.sandbox)
            except UpstreamUnreachable as exc:
                context["error"] = str(exc)
                self.down[address] = time.monotonic() + DOWN_S
                FAILOVERS.inc()
                self.upstream.forget(address)
        raise GatewayError(502, f"No replica of this version could take the call ({len(addresses)} tried; "
                                f"the last: {context.get('error', 'none ready')}). They are being restarted; "
                                "retry shortly.", {"retry-after": "1"})

    async def _forward(
        self, address: str, body: bytes, context: dict[str, Any], sandbox: dict[str, Any] | None = None
    ) -> tuple[int, bytes | UpstreamStream]:
        timeout = settings.PODIUM_PREDICT_TIMEOUT_S
        try:
            status, answer = await self.upstream.post(address, "/predict", body, timeout + TIMEOUT_GRACE_S)
        except TimeoutError:
            context["error"] = "timeout"
            raise GatewayError(504, f"The model did not answer within {timeout} s.") from None
        except UpstreamUnreachable:
            raise
        except UpstreamError as exc:
            context["error"] = str(exc)
            self.upstream.forget(address)
            limit = await self._limit_hit(sandbox)
            if limit:
                context["error"] = limit
                raise GatewayError(502, f"The model server died during the call ({limit}); it is being "
                                        "restarted. Retry shortly, or deploy the version with a higher limit.",
                                   {"retry-after": "1"}) from None
            raise GatewayError(502, "The model server dropped the call; it is being restarted. Retry shortly.",
                               {"retry-after": "1"}) from None
        if status >= 400 and isinstance(answer, bytes):
            context["error"] = answer[:500].decode(errors="replace")
        return status, answer
