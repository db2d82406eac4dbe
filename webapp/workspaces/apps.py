from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "webapp.workspaces"
    label = "workspaces"

    def ready(self) -> None:
        from webapp.workspaces import schema  # noqa: F401 - registers the OpenAPI auth extension
