"""HTTP side of the graph: GraphQL over HTTP and the SDL. Thin: the work is in service.py."""

from __future__ import annotations

import json

from flask import Response, jsonify, request

from functions.graph import service
from functions.graph.schemas import GraphQLRequest, GraphQLResponse
from runtime.app import clients
from runtime.identity import optional_identity
from runtime.schemas import Api

api = Api("graph")

_BODY = {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/GraphQLRequest"}}}}


@api.post("/graph/v1/graphql", operation_id="graphql",
          summary="GraphQL: the generic API (node, nodes, search, createNode, updateNode, deleteNode) and the typed "
                  "API generated from every installed schema",
          body=_BODY, extra_models=(GraphQLRequest,),
          responses={200: GraphQLResponse, 401: "not signed in (UNAUTHENTICATED)"})
def graphql():
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        result = {"data": None, "errors": [{"message": f"body is not valid JSON: {exc}",
                                            "extensions": {"code": "BAD_USER_INPUT"}}]}
    else:
        c = clients()
        result = service.run(c.db, c.mongo, optional_identity(), body, settings=c.settings)
    status = 401 if _only(result, "UNAUTHENTICATED") else 200
    return jsonify(result), status


@api.get("/graph/v1/schema.graphql", operation_id="graphSchema",
         summary="The current schema as SDL: the core plus every installed namespace's typed API",
         responses={200: {"description": "SDL text", "content": {"text/plain": {"schema": {"type": "string"}}}}})
def schema_graphql():
    return Response(service.schema_sdl(clients().db), mimetype="text/plain")


def _only(result: dict, code: str) -> bool:
    errors = result.get("errors") or []
    return bool(errors) and all(e["extensions"]["code"] == code for e in errors) and result.get("data") is None
