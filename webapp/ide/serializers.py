"""Request and response shapes of the editor API (responses are documented for the schema)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp.core.api import INT_MAX
from webapp.ide import catalog
from webapp.ide.files import MAX_FILES, MAX_PATH, PATH_PATTERN
from webapp.ide.models import Draft, ModelSource, TestRun
from webapp.serving.actions import NAME_RE, NAME_RULE

NAME_INVALID = f"'%(value)s' is not a valid model name: {NAME_RULE}."


@extend_schema_field({
    "type": "object",
    "patternProperties": {PATH_PATTERN: {"type": "string"}},
    "additionalProperties": False,
    "propertyNames": {"maxLength": MAX_PATH},
    "maxProperties": MAX_FILES,
    "description": "{path: text}: relative POSIX paths inside the model (not under _podium/), "
                   "at most 1 MiB of text each.",
})
class FilesField(serializers.DictField):
    """``{path: text}``; paths and sizes are checked by the action (with messages that name the file)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(allow_blank=True, trim_whitespace=False), **kwargs)


class SourceUpdateSerializer(serializers.Serializer[Any]):
    files = FilesField()
    base_revision = serializers.IntegerField(min_value=0, max_value=INT_MAX)
    sample_input = serializers.JSONField(required=False, allow_null=True)


class DraftUpdateSerializer(serializers.Serializer[Any]):
    files = FilesField()
    base_revision = serializers.IntegerField(min_value=0, max_value=INT_MAX)
    sample_input = serializers.JSONField(required=False, allow_null=True, default=None)


class SyntaxSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(max_length=255)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=1024 * 1024)


class TestRunCreateSerializer(serializers.Serializer[Any]):
    files = FilesField()
    sample_input = serializers.JSONField(allow_null=True)


class WarmRunnerRequestSerializer(serializers.Serializer[Any]):
    files = FilesField(required=False, help_text="the files a Test would send; default: your draft, else the source")


class DeploySerializer(serializers.Serializer[Any]):
    files = FilesField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    promote = serializers.BooleanField(required=False, default=True)


class ModelCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=64, validators=[RegexValidator(NAME_RE, NAME_INVALID)])
    template = serializers.ChoiceField(choices=[])
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = catalog.template_ids()
        template: Any = self.fields["template"]
        template.choices = known
        template.error_messages["invalid_choice"] = (
            f"There is no template '{{input}}'; choose one of: {', '.join(known)}.")


# Responses -----------------------------------------------------------------------------------


class SourceSerializer(serializers.ModelSerializer[ModelSource]):
    files = FilesField(read_only=True)
    binary = serializers.ListField(child=serializers.CharField(), read_only=True)
    saved_by = serializers.CharField(source="saved_by.username", default=None, read_only=True, allow_null=True)
    saved_at = serializers.SerializerMethodField()
    sample_input = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = ModelSource
        fields = ["files", "binary", "revision", "saved_by", "saved_at", "sample_input"]
        read_only_fields = fields

    def get_saved_at(self, obj: ModelSource) -> str | None:
        return obj.saved_at.isoformat() if obj.revision else None


class ConflictSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    code = serializers.CharField()
    theirs = SourceSerializer()


class DraftSerializer(serializers.ModelSerializer[Draft]):
    files = FilesField(read_only=True)
    sample_input = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Draft
        fields = ["files", "base_revision", "sample_input", "updated_at"]
        read_only_fields = fields


class EditorSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    since = serializers.CharField()


class EditingSerializer(serializers.Serializer[Any]):
    editors = EditorSerializer(many=True)


class SyntaxErrorSerializer(serializers.Serializer[Any]):
    line = serializers.IntegerField()
    column = serializers.IntegerField()
    message = serializers.CharField()
    end_line = serializers.IntegerField(required=False)
    end_column = serializers.IntegerField(required=False)


class SyntaxResultSerializer(serializers.Serializer[Any]):
    errors = SyntaxErrorSerializer(many=True)  # type: ignore[assignment]


class LineSerializer(serializers.Serializer[Any]):
    time = serializers.CharField(allow_null=True)
    stream = serializers.CharField()
    text = serializers.CharField(allow_blank=True)


class RunErrorSerializer(serializers.Serializer[Any]):
    type = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    traceback = serializers.CharField(allow_blank=True)
    line = serializers.IntegerField(allow_null=True)
    path = serializers.CharField(allow_null=True)


class RunResultSerializer(serializers.Serializer[Any]):
    load_ms = serializers.FloatField()
    predict_ms = serializers.FloatField()
    answer = serializers.JSONField(allow_null=True)


class TestRunSerializer(serializers.ModelSerializer[TestRun]):
    output = LineSerializer(many=True, read_only=True)
    result = RunResultSerializer(read_only=True, allow_null=True)
    error = RunErrorSerializer(read_only=True, allow_null=True)
    failed_step = serializers.CharField(read_only=True, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = TestRun
        fields = ["id", "status", "output", "result", "error", "failed_step", "environment_cached", "warm",
                  "created_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def to_representation(self, instance: TestRun) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["failed_step"] = instance.failed_step or None
        return data


class WarmRunnerStateSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["ready", "starting", "cold", "off"], help_text=(
        "ready: the next Test starts with the libraries imported; starting: it will be soon; cold: the "
        "environment is not built yet (the first Test builds it); off: GPU models and PODIUM_IDE_WARM_RUNNERS=0"))


class TestRunCreatedSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    status = serializers.CharField()


class TemplateSerializer(serializers.Serializer[Any]):
    id = serializers.ChoiceField(choices=[])
    name = serializers.CharField()
    description = serializers.CharField()
    sample_input = serializers.JSONField(allow_null=True)
    files = serializers.ListField(child=serializers.CharField())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["id"].choices = catalog.template_ids()  # type: ignore[attr-defined]


TestRunSerializer.__test__ = False  # type: ignore[attr-defined]
TestRunCreateSerializer.__test__ = False  # type: ignore[attr-defined]
TestRunCreatedSerializer.__test__ = False  # type: ignore[attr-defined]
