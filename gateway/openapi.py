"""/openapi.json assembled from the functions' own OPENAPI path fragments."""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}},
}


def assemble(settings, functions) -> dict:
    paths = {
        "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness of mongo, redis, amqp and the store", "security": [],
                            "responses": {"200": {"description": "ready"}, "503": {"description": "a check failed"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text exposition format"}}}},
    }
    schemas = {"Error": ERROR_SCHEMA}
    for spec in functions:
        fragment = spec.openapi_paths() or {}
        paths.update(fragment.get("paths", {}))
        schemas.update(fragment.get("schemas", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "PCloud API", "version": "1.0.0",
                 "description": "Self-hosted personal cloud: SSO, files with dedup uploads, pairing, "
                                "mobile sync, push."},
        "servers": [{"url": settings.public_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }
