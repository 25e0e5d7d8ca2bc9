"""Phone registry and push debugging: /mobile/v1/devices, …/push-token, /mobile/v1/notifications (CONTRACT §5, §6).

Thin: parse, call push.registry, shape JSON.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from push import registry
from runtime.app import clients, json_body, page_params
from runtime.identity import current_identity

bp = Blueprint("device_routes", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
OPENAPI_PATHS = {
    "/mobile/v1/devices": {"post": {
        "summary": "Register this phone (and its FCM registration token)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "platform"],
            "properties": {"name": {"type": "string"}, "platform": {"type": "string", "enum": ["android", "ios"]},
                           "push_token": {"type": "string"}}}}}},
        "responses": {"201": {"description": "registered", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"device_id": {"type": "string"}}}}}},
            "400": {"description": "bad input", "content": {"application/json": {"schema": _ERROR}}}},
    }},
    "/mobile/v1/devices/{device_id}/push-token": {"put": {
        "summary": "Replace this phone's FCM registration token",
        "parameters": [{"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["push_token"], "properties": {"push_token": {"type": "string"}}}}}},
        "responses": {"204": {"description": "stored"},
                      "400": {"description": "bad input", "content": {"application/json": {"schema": _ERROR}}},
                      "404": {"description": "not your phone", "content": {"application/json": {"schema": _ERROR}}}},
    }},
    "/mobile/v1/notifications": {"get": {
        "summary": "Recent push deliveries to your phones (queued, sent, failed with reason), newest first",
        "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                       for n in ("cursor", "limit", "device_id")],
        "responses": {"200": {"description": "deliveries of the last days", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "next_cursor": {"type": ["string", "null"]}}}}}}},
    }},
}


@bp.post("/mobile/v1/devices")
def register_device():
    ident = current_identity()
    body = json_body()
    device_id = registry.register_phone(clients().db, ident.user_id, body.get("name"), body.get("platform"),
                                        body.get("push_token"))
    return jsonify(device_id=device_id), 201


@bp.put("/mobile/v1/devices/<device_id>/push-token")
def put_push_token(device_id: str):
    ident = current_identity()
    body = json_body()
    registry.set_push_token(clients().db, ident.user_id, device_id, body.get("push_token"))
    return "", 204


@bp.get("/mobile/v1/notifications")
def notifications():
    ident = current_identity()
    cursor, limit = page_params(default_limit=50, max_limit=500)
    return jsonify(registry.list_deliveries(clients().db, ident.user_id, cursor, limit,
                                            request.args.get("device_id") or None))
