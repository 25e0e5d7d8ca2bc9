"""Serves the local store's presigned URLs: clients PUT and GET blocks here when PCLOUD_STORE_URL is file://.

With an S3 store the presigned URLs point at S3 itself and this function answers 404.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings
from runtime.store import BlobStore


def openapi_apis() -> list:
    from functions.blobs.routes import api

    return [api]


def create_app(settings: Settings | None = None, store: BlobStore | None = None) -> Flask:
    """`store` lets a test serve a store of its own; otherwise the process-wide one from settings."""
    from functions.blobs.routes import api

    app = function_app(__name__, settings, name="blobs")
    if store is not None:
        app.extensions["blobs_store"] = store
    app.register_blueprint(api.blueprint)
    return app
