"""The one ASGI application: the invocation gateway and Django for HTTP, Channels for websockets.

Websockets pass origin validation (only Podium's own origins, scheme, host and port, may open
them: ``webapp.core.origins``) and
Django's session authentication before reaching a consumer; consumers then use
the same permission check as views and the API.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.core.origins import SameOriginValidator  # noqa: E402
from webapp.routing import websocket_urlpatterns  # noqa: E402
from webapp.serving.gateway import Gateway  # noqa: E402

application = ProtocolTypeRouter({
    # /v1/... (predictions) is served by the lean gateway; everything else by Django.
    "http": Gateway(django_asgi_app),
    "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
