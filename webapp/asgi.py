"""ASGI entry point: HTTP through Django, websockets through Channels (the live run pages).

Websockets get the session user (AuthMiddlewareStack); each consumer checks the Origin itself
(webapp/runs/consumers.py) so that a refusal closes with a code the page can show (4403), where
AllowedHostsOriginValidator would only drop the handshake and the page would retry forever.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.dev")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
