"""Podium's Django project: settings, URL map, ASGI stack and the domain apps."""

# Every process that loads Django also loads Podium's Celery app, so that ``.delay()`` on any
# ``shared_task`` goes to Podium's broker rather than Celery's default one.
from workers.celery import app as celery_app

__all__ = ["celery_app"]
