"""GET /search/v1: parse, call functions.search.service, shape JSON. The owner is the gateway's identity."""

from __future__ import annotations

import re

from flask import jsonify, request

from functions.search import service
from functions.search.schemas import SearchPage, SearchQuery
from runtime.app import settings
from runtime.errors import BadRequest
from runtime.identity import current_identity
from runtime.schemas import Api

api = Api("search", import_name=__name__)
bp = api.blueprint
_TYPE_RE = re.compile(r"^[a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_]*$")


def _types() -> list[str] | None:
    raw = [t.strip() for value in request.args.getlist("type") for t in value.split(",") if t.strip()]
    for t in raw:
        if not _TYPE_RE.match(t):
            raise BadRequest(f"type must look like ns.Type or files.node, got {t!r}", code="invalid_parameter",
                             details={"parameter": "type"})
    return raw or None


def _limit() -> int:
    raw = request.args.get("limit")
    if raw in (None, ""):
        return 20
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("limit must be a whole number", code="invalid_parameter",
                         details={"parameter": "limit"}) from None


@api.get("/search/v1", operation_id="search", summary="Search the caller's graph nodes and file names and paths",
         query=SearchQuery,
         responses={200: SearchPage, 400: "invalid_query, invalid_parameter or invalid_cursor",
                    503: "the search backend did not answer"})
def search():
    ident = current_identity()
    types = service.visible_types(ident, _types())
    if types == []:
        return jsonify({"items": [], "next_cursor": None})
    hits, cursor = service.search(service.index_for(settings()), ident.user_id, request.args.get("q", ""), types,
                                  _limit(), request.args.get("cursor"))
    return jsonify({"items": [{"id": h["id"], "type": h["type"], "score": h["score"],
                               "node": h.get("node") or {"id": h["id"], "type": h["type"], "data": h["fields"]}}
                              for h in hits], "next_cursor": cursor})
