from django.apps import AppConfig


class IdeConfig(AppConfig):
    name = "webapp.ide"
    label = "ide"

    def ready(self) -> None:
        # Registers the test-run task with Celery in every process that loads Django (web and worker).
        from webapp.ide import tasks  # noqa: F401
