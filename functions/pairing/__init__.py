"""Pairing NAS devices with accounts, and the devices list (CONTRACT §4).

The HTTP side lives here; the device side is the listener process (functions/pairing/listener.py) that
consumes `pcloud.device-events`. Both share functions/pairing/service.py.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERR = {"content": {"application/json": {"schema": _ERROR}}}
_STATUS = {"type": "string", "enum": ["start", "waiting", "done", "failed", "expired"]}
_SESSION = {"type": "object", "required": ["session_id", "serial", "status"], "properties": {
    "session_id": {"type": "string"}, "serial": {"type": "string"}, "status": _STATUS,
    "device_id": {"type": "string"}, "reason": {"type": "string"}}}
_DEVICE = {"type": "object", "properties": {
    "device_id": {"type": "string"}, "kind": {"type": "string", "enum": ["nas", "phone"]},
    "name": {"type": "string"}, "serial": {"type": "string"}, "online": {"type": "boolean"},
    "last_seen": {"type": ["string", "null"], "format": "date-time"},
    "paired_at": {"type": ["string", "null"], "format": "date-time"}}}

OPENAPI = {"paths": {
    "/pairing/v1/sessions": {"post": {
        "summary": "Start pairing a NAS: it blinks, and the session waits for its button",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["serial"], "properties": {"serial": {"type": "string"}}}}}},
        "responses": {
            "201": {"description": "started", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"session_id": {"type": "string"}, "serial": {"type": "string"},
                                                 "status": {"const": "start"},
                                                 "expires_at": {"type": "string", "format": "date-time"}}}}}},
            "400": {"description": "invalid_serial", **_ERR},
            "404": {"description": "device_not_found: no device with this serial has said hello", **_ERR},
            "409": {"description": "device_paired_elsewhere, pairing_in_progress or too_many_sessions (5)", **_ERR},
            "429": {"description": "more than 10 starts in a minute", **_ERR},
            "503": {"description": "the broker did not confirm the request to the device", **_ERR}},
    }},
    "/pairing/v1/sessions/{session_id}": {"get": {
        "summary": "A pairing session; with wait, answers as soon as the status differs from since (≤ 25 s)",
        "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 25}},
            {"name": "since", "in": "query", "schema": _STATUS}],
        "responses": {"200": {"description": "the session", "content": {"application/json": {"schema": _SESSION}}},
                      "400": {"description": "invalid_wait or invalid_since", **_ERR},
                      "404": {"description": "unknown or not yours", **_ERR}},
    }},
    "/devices/v1/devices": {"get": {
        "summary": "Your paired NAS boxes and registered phones",
        "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
        "responses": {"200": {"description": "devices", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"items": {"type": "array", "items": _DEVICE},
                                             "next_cursor": {"type": ["string", "null"]}}}}}}},
    }},
    "/devices/v1/devices/{device_id}": {"delete": {
        "summary": "Unpair a NAS (it is told `unpaired`) or forget a phone",
        "parameters": [{"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"204": {"description": "unpaired"}, "404": {"description": "unknown or not yours", **_ERR}},
    }},
}}


def create_app(settings: Settings | None = None) -> Flask:
    from functions.pairing.routes import bp

    app = function_app(__name__, settings, name="pairing")
    app.register_blueprint(bp)
    return app
