"""Offline sync for phones (CONTRACT §5): changes feed, ops with the conflict referee, conflicts list.

Thin: parse, call mobile_api.sync / ops / conflicts, shape JSON.
"""

from __future__ import annotations

from flask import jsonify, request

from mobile_api import conflicts, ops, sync
from mobile_api.schemas import (
    CHANGES_DEFAULT,
    CHANGES_MAX,
    Changes,
    ChangesQuery,
    ConflictPage,
    MobileOp,
    OpsBatch,
    OpsResults,
    PageQuery,
)
from runtime.app import clients, page_params
from runtime.errors import BadRequest
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("mobile_sync", tag="mobile", import_name=__name__)
bp = api.blueprint
_AUTH = "missing or invalid access token"


@api.get("/mobile/v1/changes", operation_id="getChanges",
         summary="The latest state of every node changed after the cursor, in change order",
         description="No cursor = everything. Keep calling with the returned cursor while has_more. "
                     "410 cursor_expired: the journal was compacted; start again without a cursor.",
         query=ChangesQuery,
         responses={200: Changes, 400: "invalid_cursor or invalid_limit", 401: _AUTH, 410: "cursor_expired"})
def changes():
    ident = current_identity()
    raw = request.args.get("limit")
    limit = CHANGES_DEFAULT
    if raw not in (None, ""):
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= CHANGES_MAX:
            raise BadRequest(f"limit must be a whole number between 1 and {CHANGES_MAX}", code="invalid_limit")
        limit = int(raw)
    return jsonify(sync.changes(clients().db, ident.user_id, request.args.get("cursor") or None, limit))


@api.post("/mobile/v1/ops", operation_id="postOps",
          summary="Apply a batch of offline operations; the server referees conflicts (CONTRACT §5)",
          description="Each op is applied on its own; a rejected op does not stop the batch. Conflicts are "
                      "stored (GET /mobile/v1/conflicts) and pushed to the user's devices.",
          body=OpsBatch, extra_models=(MobileOp,),
          responses={200: OpsResults, 400: "invalid_json, invalid_ops, too_many_ops, invalid_device", 401: _AUTH,
                     404: "device_id is not one of your devices"})
def post_ops():
    ident = current_identity()
    batch = body(OpsBatch)
    c = clients()
    return jsonify(ops.apply_batch(c.db, c.mongo, c.store, ident.user_id, batch.device_id, batch.ops))


@api.get("/mobile/v1/conflicts", operation_id="listConflicts", summary="Conflicts the referee resolved, newest first",
         query=PageQuery, responses={200: ConflictPage, 400: "invalid_cursor or invalid_limit", 401: _AUTH})
def list_conflicts():
    ident = current_identity()
    cursor, limit = page_params(default_limit=100, max_limit=500)
    return jsonify(conflicts.list_conflicts(clients().db, ident.user_id, cursor, limit))
