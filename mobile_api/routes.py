"""Offline sync for phones (CONTRACT §5): changes feed, ops with the conflict referee, conflicts list.

Thin: parse, call mobile_api.sync / ops / conflicts, shape JSON.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from mobile_api import conflicts, ops, sync
from runtime.app import clients, json_body, page_params
from runtime.errors import BadRequest
from runtime.identity import current_identity

bp = Blueprint("routes", __name__)

CHANGES_DEFAULT, CHANGES_MAX = 500, 2000


@bp.get("/mobile/v1/changes")
def changes():
    ident = current_identity()
    raw = request.args.get("limit")
    limit = CHANGES_DEFAULT
    if raw not in (None, ""):
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= CHANGES_MAX:
            raise BadRequest(f"limit must be a whole number between 1 and {CHANGES_MAX}", code="invalid_limit")
        limit = int(raw)
    return jsonify(sync.changes(clients().db, ident.user_id, request.args.get("cursor") or None, limit))


@bp.post("/mobile/v1/ops")
def post_ops():
    ident = current_identity()
    body = json_body()
    c = clients()
    return jsonify(ops.apply_batch(c.db, c.mongo, c.store, ident.user_id, body.get("device_id"), body.get("ops")))


@bp.get("/mobile/v1/conflicts")
def list_conflicts():
    ident = current_identity()
    cursor, limit = page_params(default_limit=100, max_limit=500)
    return jsonify(conflicts.list_conflicts(clients().db, ident.user_id, cursor, limit))


# --- OpenAPI (the Flutter team generates its Dart client from /openapi.json) ---------------------------------

_ERROR = {"$ref": "#/components/schemas/Error"}
_NODE = {"$ref": "#/components/schemas/MobileNode"}


def _err(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _ok(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(name: str, required: list[str], props: dict, summary: str) -> dict:
    return {"type": "object", "title": name, "description": summary,
            "required": ["op_id", "type", *required],
            "properties": {"op_id": {"type": "string", "minLength": 1, "maxLength": 128,
                                     "description": "client-chosen id; a repeated op_id returns the first result"},
                           "type": {"type": "string", "const": name}, **props}}


_ID = {"type": "string", "pattern": "^[0-9a-f]{24}$"}
_REV = {"type": "integer", "minimum": 0, "description": "the node's rev this device last saw"}
_NAME = {"type": "string", "minLength": 1, "description": "1-255 UTF-8 bytes, no '/' or NUL, not '.' or '..'"}

_OP_SCHEMAS = {
    "MobileOpCreateFolder": _op("create_folder", ["parent_id", "name"], {"parent_id": _ID, "name": _NAME},
                                "make a folder"),
    "MobileOpRename": _op("rename", ["node_id", "name", "base_rev"], {"node_id": _ID, "name": _NAME, "base_rev": _REV},
                          "rename a node"),
    "MobileOpMove": _op("move", ["node_id", "parent_id", "base_rev"],
                        {"node_id": _ID, "parent_id": _ID, "base_rev": _REV}, "move a node into another folder"),
    "MobileOpDelete": _op("delete", ["node_id", "base_rev"], {"node_id": _ID, "base_rev": _REV},
                          "move a node to the trash"),
    "MobileOpCommitUpload": _op("commit_upload", ["upload_id"], {"upload_id": _ID},
                                "commit an upload negotiated with POST /files/v1/uploads (node_id + base_rev there "
                                "overwrite)"),
}

OPENAPI_SCHEMAS = {
    **_OP_SCHEMAS,
    "MobileNode": {
        "type": "object",
        "required": ["id", "parent_id", "name", "kind", "rev", "size", "content_hash", "mtime", "trashed_at"],
        "properties": {
            "id": _ID, "parent_id": {"type": ["string", "null"], "description": "null for the root"},
            "name": {"type": "string"}, "kind": {"type": "string", "enum": ["file", "folder"]},
            "rev": {"type": "integer"}, "size": {"type": "integer"},
            "content_hash": {"type": ["string", "null"], "description": "hex SHA-256 of the block digests"},
            "mtime": {"type": ["string", "null"], "format": "date-time"},
            "trashed_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "set when the node is in the trash (delete it locally)"},
            "purged": {"type": "boolean", "description": "present and true when the node is gone for good"},
        },
    },
    "MobileOp": {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in _OP_SCHEMAS],
                 "discriminator": {"propertyName": "type",
                                   "mapping": {op: f"#/components/schemas/{name}"
                                               for op, name in zip(ops.OP_TYPES, _OP_SCHEMAS, strict=True)}}},
    "MobileConflictRef": {
        "type": "object", "required": ["id", "type", "resolution"],
        "properties": {"id": _ID,
                       "type": {"type": "string", "enum": ["delete_modified", "modify_deleted", "modify_modified",
                                                           "edit_edit", "name_taken", "cycle"]},
                       "resolution": {"type": "string",
                                      "enum": ["kept_server", "restored", "conflicted_copy", "merged"]}},
    },
    "MobileOpResult": {
        "type": "object", "required": ["op_id", "status"],
        "properties": {
            "op_id": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["applied", "conflict", "rejected"]},
            "node": {**_NODE, "description": "the resulting node (for edit_edit: the conflicted copy)"},
            "conflict": {"$ref": "#/components/schemas/MobileConflictRef"},
            "error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string", "description": "e.g. not_found, name_taken, "
                                              "invalid_op, invalid_name, not_a_folder"},
                                     "message": {"type": "string"}, "details": {"type": "object"}}},
        },
    },
    "MobileConflict": {
        "type": "object", "required": ["id", "type", "resolution", "node_id", "device_id", "created_at"],
        "properties": {"id": _ID, "type": {"type": "string"}, "resolution": {"type": "string"},
                       "node_id": {"type": ["string", "null"]}, "device_id": {"type": ["string", "null"]},
                       "op": {"type": "object", "description": "the op as the device sent it"},
                       "created_at": {"type": "string", "format": "date-time"}},
    },
}

OPENAPI_PATHS = {
    "/mobile/v1/changes": {"get": {
        "operationId": "getChanges",
        "summary": "The latest state of every node changed after the cursor, in change order",
        "description": "No cursor = everything. Keep calling with the returned cursor while has_more. "
                       "410 cursor_expired: the journal was compacted; start again without a cursor.",
        "parameters": [
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "opaque; from a previous response"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": CHANGES_MAX, "default": CHANGES_DEFAULT}},
        ],
        "responses": {
            "200": _ok("one page of changes", {
                "type": "object", "required": ["changes", "cursor", "has_more"],
                "properties": {"changes": {"type": "array", "items": _NODE}, "cursor": {"type": "string"},
                               "has_more": {"type": "boolean"}}}),
            "400": _err("invalid_cursor or invalid_limit"),
            "401": _err("missing or invalid access token"),
            "410": _err("cursor_expired"),
        },
    }},
    "/mobile/v1/ops": {"post": {
        "operationId": "postOps",
        "summary": "Apply a batch of offline operations; the server referees conflicts (CONTRACT §5)",
        "description": "Each op is applied on its own; a rejected op does not stop the batch. Conflicts are "
                       "stored (GET /mobile/v1/conflicts) and pushed to the user's devices.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["device_id", "ops"],
            "properties": {"device_id": {**_ID, "description": "from POST /mobile/v1/devices"},
                           "ops": {"type": "array", "maxItems": ops.MAX_OPS,
                                   "items": {"$ref": "#/components/schemas/MobileOp"}}}}}}},
        "responses": {
            "200": _ok("one result per op, in order", {
                "type": "object", "required": ["results", "cursor"],
                "properties": {"results": {"type": "array",
                                           "items": {"$ref": "#/components/schemas/MobileOpResult"}},
                               "cursor": {"type": "string", "description": "feed position covering this batch"}}}),
            "400": _err("invalid_json, invalid_ops, too_many_ops, invalid_device"),
            "401": _err("missing or invalid access token"),
            "404": _err("device_id is not one of your devices"),
        },
    }},
    "/mobile/v1/conflicts": {"get": {
        "operationId": "listConflicts",
        "summary": "Conflicts the referee resolved, newest first",
        "parameters": [
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
        ],
        "responses": {
            "200": _ok("a page of conflicts", {
                "type": "object", "required": ["items", "next_cursor"],
                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/MobileConflict"}},
                               "next_cursor": {"type": ["string", "null"]}}}),
            "400": _err("invalid_cursor or invalid_limit"),
            "401": _err("missing or invalid access token"),
        },
    }},
}
