"""A thin client for Podium's HTTP API.

Every request Podium's client makes goes through :class:`Client`, one method per endpoint, so the whole HTTP
contract with the server is on this page:

- ``GET  /api/v1/me``                                                    who am I, and my key's workspace
- ``POST /api/v1/workspaces/{ws}/models/{name}/versions``                upload a bundle (multipart: ``bundle``,
  ``description``) -> 201 ``{"number": n, "status": "queued", ...}``
- ``GET  /api/v1/workspaces/{ws}/models/{name}/versions``                list versions (a list, or a page with
  ``results``)
- ``GET  /api/v1/workspaces/{ws}/models/{name}/versions/{n}``            one version and its deploy steps
- ``GET  /api/v1/workspaces/{ws}/models/{name}/versions/{n}/logs?tail=&source=runtime|build``  its last lines
- ``GET  /api/v1/workspaces/{ws}/models/{name}``                         the model and its aliases
- ``POST /api/v1/workspaces/{ws}/models/{name}/aliases/{alias}``         ``{"version": n}``: promote
- ``POST /api/v1/workspaces/{ws}/models/{name}/rollback``                ``{"alias": a}``: move an alias back
- ``POST /v1/models/{name}/predict`` and ``/v1/models/{name}/versions/{n}/predict``: JSON in, JSON out

All of them send ``Authorization: Bearer <key>``. Errors become :mod:`podium.errors` exceptions carrying the
server's ``detail``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from podium._version import __version__
from podium.config import Config, resolve
from podium.errors import (
    APIError,
    BundleRejected,
    ConfigurationError,
    ConnectionFailed,
    error_for_status,
)

USER_AGENT = f"podium-client/{__version__}"


def _seg(value: str | int) -> str:
    """One URL path segment, escaped (model names and aliases are slugs, but never trust that here)."""
    return quote(str(value), safe="")


def _detail(response: httpx.Response) -> tuple[str, str | None, Any]:
    """The server's message for a person, its machine code and field errors, from an error response."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:500] if text else response.reason_phrase or "error"), None, None
    if isinstance(body, dict):
        detail = body.get("detail")
        errors = body.get("errors")
        if detail is None and body:
            errors = errors or body
            field, messages = next(iter(body.items()))
            first = messages[0] if isinstance(messages, list) and messages else messages
            detail = f"{field}: {first}"
        code = body.get("code")
        return str(detail), code if isinstance(code, str) else None, errors
    return str(body)[:500], None, None


class Client:
    """Podium's HTTP API with one API key. Cheap to create; holds one connection pool.

    ``transport`` lets tests plug in an ``httpx.MockTransport``.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        workspace: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config: Config = resolve(url, api_key, workspace)
        self._workspace = self.config.workspace
        self._http = httpx.Client(
            base_url=self.config.url,
            headers={"Authorization": f"Bearer {self.config.api_key}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return the decoded JSON body (None for an empty one) or raise a PodiumError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"{method} {self.config.url}{path} timed out") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach Podium at {self.config.url}: {exc}") from exc
        if response.is_error:
            detail, code, errors = _detail(response)
            cls = error_for_status(response.status_code)
            if path.endswith("/versions") and method == "POST" and response.status_code in (400, 413, 415):
                cls = BundleRejected
            raise cls(response.status_code, detail, method=method, url=path, code=code, errors=errors)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise APIError(
                response.status_code, f"the server answered with something that is not JSON: {response.text[:200]!r}",
                method=method, url=path,
            ) from exc

    @property
    def workspace(self) -> str:
        """The workspace slug: the one given, else the one the API key belongs to."""
        if self._workspace is None:
            self._workspace = self._workspace_from_me(self.me())
        return self._workspace

    @staticmethod
    def _workspace_from_me(me: dict[str, Any]) -> str:
        key = me.get("api_key") or {}
        if isinstance(key, dict) and isinstance(key.get("workspace"), str):
            return str(key["workspace"])
        slugs = [w["slug"] for w in me.get("workspaces") or [] if isinstance(w, dict) and "slug" in w]
        if len(slugs) == 1:
            return str(slugs[0])
        if not slugs:
            raise ConfigurationError("these credentials reach no workspace")
        raise ConfigurationError(
            f"these credentials reach several workspaces ({', '.join(slugs)}): "
            "pick one with podium.login(..., workspace=SLUG) or PODIUM_WORKSPACE"
        )

    def _model(self, name: str) -> str:
        return f"/api/v1/workspaces/{_seg(self.workspace)}/models/{_seg(name)}"

    # -- the API ----------------------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/me")
        return result

    def upload_version(
        self, name: str, bundle: Path, *, description: str = "", promote: bool = True, timeout: float = 600.0
    ) -> dict[str, Any]:
        """Upload a bundle tarball; the model is created on its first version. Returns the new version.

        ``promote=False`` asks the server not to move the production alias to it once it is ready.
        """
        data = {"description": description} if description else {}
        if not promote:
            data["promote"] = "false"
        with open(bundle, "rb") as f:
            result: dict[str, Any] = self.request(
                "POST", f"{self._model(name)}/versions",
                files={"bundle": (bundle.name, f, "application/gzip")}, data=data or None, timeout=timeout,
            )
        return result

    def model(self, name: str) -> dict[str, Any]:
        """The model with its aliases: ``{"name", "aliases": [{"name", "routes": [{"version", "weight"}]}], ...}``."""
        result: dict[str, Any] = self.request("GET", self._model(name))
        return result

    def versions(self, name: str) -> list[dict[str, Any]]:
        body = self.request("GET", f"{self._model(name)}/versions")
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            return list(body["results"])
        return list(body or [])

    def version(self, name: str, number: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"{self._model(name)}/versions/{int(number)}")
        return result

    def logs(self, name: str, number: int, *, tail: int = 200, source: str = "runtime") -> list[dict[str, Any]]:
        """The last lines of a version's ``runtime`` logs (its model server) or ``build`` logs (its environment)."""
        body = self.request(
            "GET", f"{self._model(name)}/versions/{int(number)}/logs", params={"tail": int(tail), "source": source}
        )
        return list((body or {}).get("lines") or [])

    def promote(self, name: str, version: int, alias: str = "production") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"{self._model(name)}/aliases/{_seg(alias)}", json={"version": int(version)}
        )
        return result or {}

    def rollback(self, name: str, alias: str = "production") -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"{self._model(name)}/rollback", json={"alias": alias})
        return result or {}

    def delete_model(self, name: str) -> None:
        """Delete the model, every version and its call records; its endpoint stops answering at once."""
        self.request("DELETE", self._model(name))

    def delete_version(self, name: str, number: int) -> None:
        """Delete one version (refused while an alias routes traffic to it)."""
        self.request("DELETE", f"{self._model(name)}/versions/{int(number)}")

    def predict(self, name: str, body: Any, *, version: int | None = None, timeout: float = 60.0) -> Any:
        """POST a JSON body to the model's endpoint (its production alias, or one version) and return the answer."""
        path = f"/v1/models/{_seg(name)}" + (f"/versions/{int(version)}/predict" if version else "/predict")
        content = json.dumps(to_json(body)).encode()
        return self.request(
            "POST", path, content=content, headers={"Content-Type": "application/json"}, timeout=timeout
        )

    def predict_url(self, name: str, version: int | None = None) -> str:
        if version:
            return f"{self.config.url}/v1/models/{_seg(name)}/versions/{int(version)}/predict"
        return f"{self.config.url}/v1/models/{_seg(name)}/predict"


def to_json(value: Any) -> Any:
    """Make NumPy arrays and scalars, torch tensors and pandas frames JSON-ready (through their ``tolist``)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    to_numpy = getattr(value, "to_numpy", None)  # pandas
    if callable(to_numpy):
        value = to_numpy()
    detach = getattr(value, "detach", None)  # torch: a tensor that requires grad cannot tolist() in all versions
    if callable(detach):
        value = detach().cpu()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")
