"""Pairing NAS devices with accounts, and the devices list (CONTRACT §4).

The HTTP side lives here; the device side is the listener process (functions/pairing/listener.py) that
consumes `pcloud.device-events`. Both share functions/pairing/service.py.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.pairing.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.pairing.routes import api

    app = function_app(__name__, settings, name="pairing")
    app.register_blueprint(api.blueprint)
    return app
