"""Celery app and tasks: slow and scheduled work, run by ``celery -A workers``."""

from workers.celery import app

__all__ = ["app"]
