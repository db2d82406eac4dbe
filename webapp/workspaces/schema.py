"""OpenAPI description of Podium's API key authentication (for drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.workspaces.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "pod_<32 base62 characters><6-character checksum>",
            "description": "A workspace API key: `Authorization: Bearer pod_...`.",
        }
