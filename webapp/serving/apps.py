from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "webapp.serving"
    label = "serving"

    def ready(self) -> None:
        from webapp.serving import schema, signals  # noqa: F401 - the OpenAPI extension; stops deleted versions
