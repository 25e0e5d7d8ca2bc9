"""The knowledge graph (CONTRACT §7): GraphQL over HTTP with a schema apps extend at run time."""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis():
    from functions.graph.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.graph.routes import api

    app = function_app(__name__, settings, name="graph")
    app.register_blueprint(api.blueprint)
    return app
