"""Serves the local store's presigned URLs: clients PUT and GET blocks here when PCLOUD_STORE_URL is file://.

With an S3 store the presigned URLs point at S3 itself and this function answers 404.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings
from runtime.store import BlobStore

_DIGEST = {"name": "digest", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
_SIGNED = [
    {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
    {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
]

OPENAPI = {"paths": {
    "/blobs/v1/{digest}": {
        "put": {
            "summary": "Upload one block through a presigned URL (local store)",
            "security": [],
            "parameters": [_DIGEST, {"name": "size", "in": "query", "required": True,
                                     "schema": {"type": "integer"}}, *_SIGNED],
            "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                "format": "binary"}}}},
            "responses": {"200": {"description": "stored"},
                          "400": {"description": "size_mismatch, digest_mismatch or invalid_hash"},
                          "401": {"description": "invalid_signature or url_expired"}},
        },
        "get": {
            "summary": "Download one block through a presigned URL (local store); Range → 206",
            "security": [],
            "parameters": [_DIGEST, {"name": "filename", "in": "query", "schema": {"type": "string"}}, *_SIGNED],
            "responses": {"200": {"description": "the bytes"}, "206": {"description": "a byte range"},
                          "401": {"description": "invalid_signature or url_expired"},
                          "404": {"description": "blob_not_found"}, "416": {"description": "range_not_satisfiable"}},
        },
    },
}}


def create_app(settings: Settings | None = None, store: BlobStore | None = None) -> Flask:
    """`store` lets a test serve a store of its own; otherwise the process-wide one from settings."""
    from functions.blobs.routes import bp

    app = function_app(__name__, settings, name="blobs")
    if store is not None:
        app.extensions["blobs_store"] = store
    app.register_blueprint(bp)
    return app
