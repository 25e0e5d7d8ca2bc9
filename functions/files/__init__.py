"""Files: a per-user tree in MongoDB and dedup-by-hash block uploads straight to the object store (CONTRACT §3).

Routes in routes.py, the tree service in service.py (also used by mobile_api's ops referee), uploads and
downloads in uploads.py, trash purge / block GC / upload expiry in gc.py run as rq jobs (tasks.py).
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings

_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_NODE = {"type": "object", "required": ["id", "parent_id", "name", "kind", "rev", "size", "content_hash", "mtime",
                                        "trashed_at"], "properties": {
    "id": {"type": "string"}, "parent_id": {"type": ["string", "null"]}, "name": {"type": "string"},
    "kind": {"type": "string", "enum": ["file", "folder"]}, "rev": {"type": "integer"},
    "size": {"type": "integer"}, "content_hash": {"type": ["string", "null"]},
    "mtime": {"type": ["string", "null"], "format": "date-time"},
    "trashed_at": {"type": ["string", "null"], "format": "date-time"}}}
_NODE_OK = {"content": {"application/json": {"schema": _NODE}}}
_LIST = {"content": {"application/json": {"schema": {"type": "object", "properties": {
    "items": {"type": "array", "items": _NODE}, "next_cursor": {"type": ["string", "null"]}}}}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGE = [{"name": "cursor", "in": "query", "schema": {"type": "string"}},
         {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}]
_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _json(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


OPENAPI = {"paths": {
    "/files/v1/root": {"get": {"summary": "The caller's root folder (created on first use)",
                               "responses": {"200": _NODE_OK, "401": _ERR}}},
    "/files/v1/nodes/{id}": {
        "get": {"summary": "One node", "parameters": [_ID],
                "responses": {"200": _NODE_OK, "404": _ERR}},
        "patch": {"summary": "Rename and/or move a node at base_rev", "parameters": [_ID],
                  "requestBody": _json({"type": "object", "required": ["base_rev"], "properties": {
                      "name": {"type": "string"}, "parent_id": {"type": "string"}, "base_rev": {"type": "integer"}}}),
                  "responses": {"200": _NODE_OK, "400": _ERR, "404": _ERR,
                                "409": {"description": "stale_rev (details.node), name_taken, cycle, trashed",
                                        **_ERR}}},
        "delete": {"summary": "Move a node (and its subtree) to the trash", "parameters": [
            _ID, {"name": "base_rev", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": _NODE_OK, "404": _ERR, "409": {"description": "stale_rev", **_ERR}}},
    },
    "/files/v1/nodes/{id}/children": {"get": {
        "summary": "Live children of a folder by name, paged", "parameters": [_ID, *_PAGE],
        "responses": {"200": _LIST, "404": _ERR}}},
    "/files/v1/nodes/{id}/restore": {"post": {
        "summary": "Restore a trashed node with what was trashed with it and its trashed ancestors",
        "parameters": [_ID], "responses": {"200": _NODE_OK, "404": _ERR,
                                           "409": {"description": "name_taken", **_ERR}}}},
    "/files/v1/nodes/{id}/content": {"get": {
        "summary": "The file's bytes; Range → 206, ETag = content_hash",
        "parameters": [_ID, {"name": "Range", "in": "header", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the bytes", "content": {"application/octet-stream": {}}},
                      "206": {"description": "a byte range"},
                      "304": {"description": "If-None-Match matched"}, "404": _ERR, "416": _ERR}}},
    "/files/v1/nodes/{id}/preview": {"get": {
        "summary": "A JPEG preview of an image file (JPEG, PNG, WebP, HEIC), EXIF orientation applied, cached",
        "parameters": [_ID, {"name": "size", "in": "query", "schema": {"type": "integer", "enum": [256, 1024]}}],
        "responses": {"200": {"description": "the preview", "content": {"image/jpeg": {}}},
                      "304": {"description": "If-None-Match matched"}, "400": _ERR, "404": _ERR,
                      "413": {"description": "image_too_large", **_ERR},
                      "415": {"description": "not_an_image (also corrupt or truncated)", **_ERR}}}},
    "/files/v1/trash": {"get": {"summary": "Nodes the caller trashed, paged", "parameters": _PAGE,
                                "responses": {"200": _LIST}}},
    "/files/v1/folders": {"post": {
        "summary": "Create a folder",
        "requestBody": _json({"type": "object", "required": ["parent_id", "name"], "properties": {
            "parent_id": {"type": "string"}, "name": {"type": "string"}}}),
        "responses": {"201": _NODE_OK, "400": {"description": "invalid_name", **_ERR}, "404": _ERR,
                      "409": {"description": "name_taken", **_ERR}}}},
    "/files/v1/uploads": {"post": {
        "summary": "Negotiate an upload: which 4 MiB blocks must be sent, with presigned PUTs",
        "requestBody": _json({"type": "object", "required": ["size", "blocks"], "properties": {
            "parent_id": {"type": "string"}, "name": {"type": "string"}, "size": {"type": "integer"},
            "mtime": {"type": ["string", "number"]}, "node_id": {"type": "string"}, "base_rev": {"type": "integer"},
            "blocks": {"type": "array", "maxItems": 10000, "items": {"type": "object", "required": ["hash", "size"],
                                                                      "properties": {"hash": _HASH,
                                                                                     "size": {"type": "integer"}}}}}}),
        "responses": {"201": {"content": {"application/json": {"schema": {"type": "object", "properties": {
            "upload_id": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
            "missing": {"type": "array", "items": {"type": "object", "properties": {
                "hash": _HASH, "url": {"type": "string"}, "method": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}},
            "400": {"description": "invalid_hash, invalid_block_size, size_mismatch, invalid_name", **_ERR},
            "404": _ERR, "413": {"description": "too_many_blocks", **_ERR}}}},
    "/files/v1/uploads/{id}/commit": {"post": {
        "summary": "Commit an upload: 201 new file, 200 overwrite; idempotent", "parameters": [_ID],
        "responses": {"201": _NODE_OK, "200": _NODE_OK, "404": _ERR,
                      "409": {"description": "blocks_missing (details.missing), stale_rev, name_taken", **_ERR},
                      "410": {"description": "upload_expired", **_ERR}}}},
}}


def create_app(settings: Settings | None = None) -> Flask:
    """The unique (owner, live_key) index is what makes sibling names unique, so make sure it exists."""
    from pymongo.errors import PyMongoError

    from functions.files import gc, tree, uploads
    from functions.files.routes import bp

    app = function_app(__name__, settings, name="files")
    app.register_blueprint(bp)
    try:
        db = app.extensions["pcloud"].db
        for module in (tree, uploads, gc):
            module.ensure_indexes(db)
    except PyMongoError as exc:  # start anyway: /readyz reports the database, requests get a JSON 503
        import logging

        logging.getLogger(__name__).warning("files: could not ensure indexes at start-up: %s", exc)
    return app
