"""Podium's Django project: settings, URL map, ASGI stack and the domain apps."""
