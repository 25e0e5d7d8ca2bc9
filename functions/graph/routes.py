"""HTTP side of the graph: GraphQL over HTTP and the SDL. Thin: the work is in service.py."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from functions.graph import service
from runtime.app import clients
from runtime.identity import optional_identity

bp = Blueprint("graph", __name__)


@bp.post("/graph/v1/graphql")
def graphql():
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        body = exc
    c = clients()
    if isinstance(body, Exception):
        result = {"data": None, "errors": [{"message": f"body is not valid JSON: {body}",
                                            "extensions": {"code": "BAD_USER_INPUT"}}]}
    else:
        result = service.run(c.db, c.mongo, optional_identity(), body)
    status = 401 if _only(result, "UNAUTHENTICATED") else 200
    return jsonify(result), status


@bp.get("/graph/v1/schema.graphql")
def schema_graphql():
    return Response(service.schema_sdl(clients().db), mimetype="text/plain")


def _only(result: dict, code: str) -> bool:
    errors = result.get("errors") or []
    return bool(errors) and all(e["extensions"]["code"] == code for e in errors) and result.get("data") is None

