"""Search (CONTRACT §9): GET /search/v1 over the caller's graph nodes and file names; the index is kept current
by the indexer process (`python -m functions.search.indexer`), a consumer of the event log."""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_HIT = {"type": "object", "required": ["id", "type", "score", "node"], "properties": {
    "id": {"type": "string"}, "type": {"type": "string", "description": "ns.Type, or files.node for a file"},
    "score": {"type": "number"},
    "node": {"type": "object", "description": "the file node (§3) or the graph node (§7) as last indexed"}}}

OPENAPI = {"paths": {
    "/search/v1": {"get": {
        "operationId": "search",
        "summary": "Search the caller's graph nodes (@search fields) and file names and paths",
        "description": "Words are ANDed, case- and accent-insensitive; `word*` is a prefix, `\"a b\"` a phrase, "
                       "`field:value` an exact field value (e.g. name:IMG_1.jpg, path:/Camera/IMG_1.jpg).",
        "parameters": [
            {"name": "q", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 1000}},
            {"name": "type", "in": "query", "schema": {"type": "string"},
             "description": "only this type (ns.Type or files.node); repeat or comma-separate for several"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "hits, best first", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"items": {"type": "array", "items": _HIT},
                                                 "next_cursor": {"type": ["string", "null"]}}}}}},
            "400": {"description": "invalid_query, invalid_parameter, invalid_cursor", **_ERROR},
            "503": {"description": "the search backend did not answer", **_ERROR}},
    }},
}}


def create_app(settings: Settings | None = None) -> Flask:
    from functions.search.routes import bp

    app = function_app(__name__, settings, name="search")
    app.register_blueprint(bp)
    return app
