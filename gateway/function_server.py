"""Serve one function on its own (its own gunicorn deployment) behind the gateway's proxy.

    gunicorn 'gateway.function_server:make("files")'

The function trusts only the identity the gateway signed (X-PCloud-Identity); it shares
PCLOUD_DATA_DIR's `secrets/gateway-identity` with the gateway.
"""

from __future__ import annotations

from gateway import routing
from runtime.clients import clients_for
from runtime.identity import IdentityFromHeader
from runtime.logs import configure_logging
from runtime.settings import Settings, load_settings


def make(name: str, settings: Settings | None = None):
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    spec = next((s for s in routing.FUNCTIONS if s.name == name), None)
    if spec is None:
        raise SystemExit(f"unknown function {name!r}; known: {', '.join(s.name for s in routing.FUNCTIONS)}")
    app = spec.load_factory()(settings)
    secret = clients_for(settings).keys.secret("gateway-identity")
    app.wsgi_app = IdentityFromHeader(app.wsgi_app, secret)
    return app
