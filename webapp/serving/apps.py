from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "webapp.serving"
    label = "serving"

    def ready(self) -> None:
        from webapp.serving import signals  # noqa: F401 - connects the receiver that stops deleted versions
