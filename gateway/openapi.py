"""/openapi.json: the gateway's own endpoints plus every function's declared operations (runtime.schemas).

A function package exposes `openapi_apis() -> list[runtime.schemas.Api]` (importing its routes lazily, so the
gateway documents a function it proxies to without building it). Each operation's `security` comes from the
routing table unless the operation declares its own: `security_for` is the one place policy becomes document.
"""

from __future__ import annotations

import importlib

from runtime import schemas

BEARER = "bearer"


def security_for(spec, op: schemas.Operation) -> list[dict]:
    """The OpenAPI security requirement of `op` served by the function `spec` (routing.FunctionSpec): its auth
    policy and the scope the routing table asks for (OpenAPI 3.1 lets a bearer requirement name it)."""
    policy = spec.auth_for(op.path)
    if policy == "none":
        return []
    scope = _scope_for(spec, op)
    requirement = {BEARER: [scope] if scope else []}
    return [{}, requirement] if policy == "optional" else [requirement]


def _scope_for(spec, op: schemas.Operation) -> str | None:
    """The scope the routing table asks for this path and method (the gateway enforces the same answer)."""
    return spec.scope_for(op.path, op.method)


def function_operations(spec) -> list[schemas.Operation]:
    module = importlib.import_module(spec.factory.partition(":")[0])
    apis = getattr(module, "openapi_apis", None)
    return [op for api in (apis() if apis else []) for op in api.operations]


_gateway = schemas.Api("gateway", tag="gateway")
_gateway.operations += [
    schemas.Operation("GET", "/healthz", "getHealth", "Liveness",
                      responses={200: "alive: {\"status\": \"ok\"}"}, security=[], tags=["gateway"]),
    schemas.Operation("GET", "/readyz", "getReadiness", "Readiness of mongo, redis, amqp and the store",
                      responses={200: "ready", 503: "a check failed (its value says why)"}, security=[],
                      tags=["gateway"]),
    schemas.Operation("GET", "/metrics", "getMetrics", "Prometheus metrics",
                      responses={200: {"description": "text exposition format",
                                       "content": {"text/plain": {"schema": {"type": "string"}}}}},
                      security=[], tags=["gateway"]),
    schemas.Operation("GET", "/openapi.json", "getOpenApi", "This document",
                      responses={200: {"description": "OpenAPI 3.1", "content": {"application/json": {
                          "schema": {"type": "object"}}}}}, security=[], tags=["gateway"]),
]


def _gateway_answers(paths: dict, operations, owner: dict) -> None:
    """What the gateway itself may answer before a function runs: 401 without a valid token, 403 without the
    scope, 413 over the body limit, 429 over the rate limit."""
    error = {"content": {"application/json": {"schema": schemas.ERROR_REF}}}
    for op in operations:
        spec = owner.get(id(op))
        if spec is None:
            continue
        responses = paths[op.path][op.method.lower()]["responses"]
        if spec.auth_for(op.path) == "required" and op.security is None:
            responses.setdefault("401", {"description": "unauthorized: missing or invalid access token", **error})
            if _scope_for(spec, op):
                responses.setdefault("403", {"description": "insufficient_scope (details.required names it)",
                                             **error})
        if op.body is not None:
            responses.setdefault("413", {"description": "payload_too_large: over this endpoint's body limit",
                                         **error})
        responses.setdefault("429", {"description": "rate_limited (Retry-After says when to try again)", **error})


SCOPE_DESCRIPTIONS = {
    "files.read": "read your files (/files/v1 GET)", "files.write": "change your files (/files/v1)",
    "devices": "list and remove your devices (/devices/v1)", "pairing": "pair NAS boxes (/pairing/v1)",
    "sync": "phone sync (/mobile/v1)", "graph.read": "read your graph and events (/graph/v1, /events/v1)",
    "graph.write": "change your graph", "apps": "use apps and their actions (/apps/v1)",
    "search": "search your content (/search/v1)", "admin": "manage users and groups (admins only, /admin/v1)",
    "openid": "sign in (OpenID Connect)", "profile": "your name", "email": "your email address",
}


def oauth_schemes(settings) -> dict:
    """CONTRACT §2 as OpenAPI: the scopes every operation's `bearer` requirement names, and where to get
    tokens that hold them (siblings: the code flow; first-party clients hold every user scope)."""
    base = settings.public_url
    return {
        "oauth2": {"type": "oauth2", "description": "sibling apps get only the scopes they were registered with "
                                                    "(PCLOUD_SSO_CLIENTS[].scopes); first-party tokens hold every "
                                                    "user scope, plus admin for admins",
                   "flows": {"authorizationCode": {"authorizationUrl": f"{base}/auth/authorize",
                                                   "tokenUrl": f"{base}/auth/token",
                                                   "refreshUrl": f"{base}/auth/token",
                                                   "scopes": SCOPE_DESCRIPTIONS}}},
        "openid": {"type": "openIdConnect", "openIdConnectUrl": f"{base}/.well-known/openid-configuration"},
    }


def assemble(settings, functions) -> dict:
    operations, owner = list(_gateway.operations), {}
    for spec in functions:
        for op in function_operations(spec):
            operations.append(op)
            owner[id(op)] = spec
    paths, components = schemas.build(
        operations, security_for=lambda op: security_for(owner[id(op)], op) if id(op) in owner else None)
    _gateway_answers(paths, operations, owner)
    return {
        "openapi": "3.1.0",
        "info": {"title": "PCloud API", "version": "1.0.0",
                 "description": "Self-hosted personal cloud: SSO, files with dedup uploads, pairing, "
                                "mobile sync, push."},
        "servers": [{"url": settings.public_url}],
        "tags": [{"name": t} for t in dict.fromkeys(tag for op in operations for tag in op.tags)],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                         "description": "an access token from /auth/token or /mobile/v1/auth/*"},
                                **oauth_schemes(settings)},
        },
        "security": [{BEARER: []}],
    }
