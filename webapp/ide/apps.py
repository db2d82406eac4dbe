from django.apps import AppConfig


class IdeConfig(AppConfig):
    name = "webapp.ide"
    label = "ide"

    def ready(self) -> None:
        # tasks: registers the test-run tasks with Celery in every process that loads Django (web and
        # worker); warm: connects the receiver that stops a warm runner's sandbox when its row is deleted.
        from webapp.ide import tasks, warm  # noqa: F401
