"""HTTP side of pairing and the device list (CONTRACT §4): parse, call the service, shape JSON."""

from __future__ import annotations

import math

from flask import Blueprint, current_app, jsonify, request

from functions.pairing.service import MAX_WAIT_SECONDS, STATUSES, PairingService
from runtime.app import clients, json_body, page_params
from runtime.errors import BadRequest
from runtime.identity import current_identity

bp = Blueprint("pairing", __name__)


def service() -> PairingService:
    found = current_app.extensions.get("pairing_service")
    if found is None:
        found = current_app.extensions["pairing_service"] = PairingService.from_clients(clients())
    return found


@bp.post("/pairing/v1/sessions")
def start_session():
    ident = current_identity()
    body = json_body()
    return jsonify(service().start(ident.user_id, body.get("serial"))), 201


@bp.get("/pairing/v1/sessions/<session_id>")
def get_session(session_id: str):
    ident = current_identity()
    raw_wait = request.args.get("wait")
    since = request.args.get("since") or None
    if since is not None and since not in STATUSES:
        raise BadRequest(f"since must be one of {', '.join(STATUSES)}", code="invalid_since")
    if raw_wait in (None, ""):
        return jsonify(service().get(ident.user_id, session_id))
    try:
        wait = float(raw_wait)
    except ValueError:
        raise BadRequest("wait must be a number of seconds (at most 25)", code="invalid_wait") from None
    if not math.isfinite(wait) or wait < 0:
        raise BadRequest("wait must be a number of seconds (at most 25)", code="invalid_wait")
    return jsonify(service().wait(ident.user_id, session_id, since, min(wait, MAX_WAIT_SECONDS)))


@bp.get("/devices/v1/devices")
def list_devices():
    ident = current_identity()
    cursor, limit = page_params(default_limit=100, max_limit=500)
    return jsonify(service().list_devices(ident.user_id, cursor, limit))


@bp.delete("/devices/v1/devices/<device_id>")
def unpair(device_id: str):
    ident = current_identity()
    service().unpair(ident.user_id, device_id)
    return "", 204
