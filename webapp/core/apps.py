from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "webapp.core"
    label = "core"

    def ready(self) -> None:
        from webapp.core.signals import ensure_periodic_tasks

        post_migrate.connect(ensure_periodic_tasks, sender=self)
