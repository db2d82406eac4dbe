"""Podium's client: ``podium.deploy(model)`` to a versioned REST endpoint.

    import podium
    podium.login("http://localhost:8000", "pod_...")     # or PODIUM_URL / PODIUM_API_KEY
    deployment = podium.deploy(model, name="churn")
    deployment.predict([[1.0, 2.0, 3.0]])

See docs/client.md for everything else, and docs/model-bundles.md for what is uploaded.
"""

from __future__ import annotations

from typing import Any

from podium._version import __version__
from podium.bundle import Bundle, build, make_tarball
from podium.client import Client
from podium.config import login, logout
from podium.deploy import Deployment, deploy
from podium.errors import (
    APIError,
    AuthenticationFailed,
    BundleError,
    BundleRejected,
    ConfigurationError,
    ConnectionFailed,
    DeploymentFailed,
    DeploymentTimeout,
    NotFound,
    PermissionDenied,
    PodiumError,
    RequirementError,
    ServerError,
)


def model(name: str, version: int | None = None, *, client: Client | None = None) -> Deployment:
    """A handle on a version already deployed (the newest when ``version`` is None)."""
    client = client or Client()
    if version is None:
        numbers = [int(v["number"]) for v in client.versions(name)]
        if not numbers:
            raise PodiumError(f"model {name} has no versions")
        version = max(numbers)
    info: dict[str, Any] = client.version(name, version)
    return Deployment(client, name, version, info.get("flavor"), info)


__all__ = [
    "APIError", "AuthenticationFailed", "Bundle", "BundleError", "BundleRejected", "Client", "ConfigurationError",
    "ConnectionFailed", "Deployment", "DeploymentFailed", "DeploymentTimeout", "NotFound", "PermissionDenied",
    "PodiumError", "RequirementError", "ServerError", "__version__", "build", "deploy", "login", "logout",
    "make_tarball", "model",
]
