"""Apps: installable third-party code with actions, triggers and a namespace of the graph (CONTRACT §8).

Archive intake and lifecycle in service.py (archive.py, manifest.py), actions and executions in actions.py and
executions.py, the event processor in processor.py (`events` process), the runtimes and their runner in
runtimes.py and runner.py (`apps` process), replay in replay.py. Routes in routes.py.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.apps.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.apps.routes import api

    app = function_app(__name__, settings, name="apps")
    app.register_blueprint(api.blueprint)
    return app
