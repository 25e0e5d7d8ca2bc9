"""Search (CONTRACT §9): GET /search/v1 over the caller's graph nodes and file names; the index is kept current
by the indexer process (`python -m functions.search.indexer`), a consumer of the event log."""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.search.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.search.routes import bp

    app = function_app(__name__, settings, name="search")
    app.register_blueprint(bp)
    return app
