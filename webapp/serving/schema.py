"""OpenAPI descriptions the model API's serializers cannot give drf-spectacular by themselves."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension


class AliasUpdateScheme(OpenApiSerializerExtension):
    """``version`` or ``routes``, never both: a ``oneOf`` of two objects, built from the fields."""

    target_class = "webapp.serving.serializers.AliasUpdateSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        fields = auto_schema._map_basic_serializer(self.target, direction)["properties"]
        fields["routes"]["minItems"] = 1  # allow_empty=False, which drf-spectacular leaves out
        return {
            "type": "object",
            "properties": fields,
            "oneOf": [
                {"required": ["version"], "not": {"required": ["routes"]}},
                {"required": ["routes"], "not": {"required": ["version"]}},
            ],
        }
