"""Exceptions raised by the Podium client.

Every error a user can meet derives from :class:`PodiumError` and has a message written for a person: the CLI
prints ``str(error)`` and nothing else. Errors that come from the server carry its ``{"detail": ...}`` message.
"""

from __future__ import annotations

from typing import Any


class PodiumError(Exception):
    """Base class of every error raised by the Podium client."""


class ConfigurationError(PodiumError):
    """The client does not know where Podium is or which API key to use."""


class BundleError(PodiumError):
    """A model cannot be turned into a bundle (unsupported object, missing file, bundle too large, ...)."""


class RequirementError(BundleError):
    """A requirement cannot be pinned, typically because the package is not installed here."""


class ConnectionFailed(PodiumError):
    """The server could not be reached (DNS, refused connection, timeout, TLS)."""


class APIError(PodiumError):
    """The server answered with an error status.

    ``detail`` is the server's message (``{"detail": ...}``), ``code`` its machine code when it sent one, and
    ``errors`` the per-field validation errors when it sent them.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        method: str = "",
        url: str = "",
        code: str | None = None,
        errors: Any = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        self.code = code
        self.errors = errors
        super().__init__(f"{detail} (HTTP {status} from {method} {url})" if method else f"{detail} (HTTP {status})")


class AuthenticationFailed(APIError):
    """401: the API key is missing, wrong, revoked or expired."""


class PermissionDenied(APIError):
    """403: the key or its user may not do this (a key's scopes, or the user's role)."""


class NotFound(APIError):
    """404: no such workspace, model or version (or one of another workspace: they look the same)."""


class BundleRejected(APIError):
    """400/413/415 on upload: the server refused the bundle."""


class ServerError(APIError):
    """5xx: the server or the model failed."""


class DeploymentFailed(PodiumError):
    """A version's build or start failed. Carries the failing step, the server's error and the last log lines."""

    def __init__(self, name: str, version: int, step: str | None, error: str | None, log_lines: list[str]) -> None:
        self.name = name
        self.version = version
        self.step = step
        self.error = error
        self.log_lines = log_lines
        where = f" at step '{step}'" if step else ""
        message = f"{name} v{version} failed{where}: {error or 'no error message from the server'}"
        if log_lines:
            message += "\nlast log lines:\n" + "\n".join(f"  {line}" for line in log_lines)
        super().__init__(message)


class DeploymentTimeout(PodiumError):
    """A version did not become ready within the time ``deploy(wait=True)`` was given."""


_BY_STATUS: dict[int, type[APIError]] = {401: AuthenticationFailed, 403: PermissionDenied, 404: NotFound}


def error_for_status(status: int) -> type[APIError]:
    """The exception class the client raises for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return APIError
