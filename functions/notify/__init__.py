"""The notifier (seed 004, CONTRACT additions in docs/webhooks.md): /notify/v1 webhooks and push rules.

Deliveries are made by the notifier process (`python -m functions.notify.worker`), a consumer of the event log.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.notify.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.notify.routes import api

    app = function_app(__name__, settings, name="notify")
    app.register_blueprint(api.blueprint)
    return app
