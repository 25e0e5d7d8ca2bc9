"""The knowledge graph (CONTRACT §7): GraphQL over HTTP with a schema apps extend at run time."""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}
_GQL_ERROR = {"type": "object", "required": ["message", "extensions"], "properties": {
    "message": {"type": "string"},
    "extensions": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string", "enum": [
        "BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "LIMIT"]}}}}}

OPENAPI = {"paths": {
    "/graph/v1/graphql": {"post": {
        "operationId": "graphql",
        "summary": "GraphQL over HTTP: the generic API (node, nodes, search, createNode, updateNode, deleteNode) "
                   "and the typed API generated from every installed schema",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["query"], "properties": {
                "query": {"type": "string"}, "variables": {"type": "object"},
                "operationName": {"type": "string"}}}}}},
        "responses": {
            "200": {"description": "result; errors carry extensions.code", "content": {"application/json": {
                "schema": {"type": "object", "properties": {
                    "data": {"type": ["object", "null"]},
                    "errors": {"type": "array", "items": _GQL_ERROR}}}}}},
            "401": {"description": "no identity", "content": {"application/json": {"schema": _ERROR}}},
            "403": {"description": "insufficient_scope", "content": {"application/json": {"schema": _ERROR}}}},
    }},
    "/graph/v1/schema.graphql": {"get": {
        "operationId": "graphSchema",
        "summary": "The current schema as SDL (core plus every installed namespace)",
        "responses": {"200": {"description": "SDL text", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
}}


def create_app(settings: Settings | None = None) -> Flask:
    from functions.graph.routes import bp

    app = function_app(__name__, settings, name="graph")
    app.register_blueprint(bp)
    return app
