from flask import Blueprint, jsonify, request

from functions.events import service
from runtime.app import clients
from runtime.identity import current_identity

bp = Blueprint("events", __name__)


@bp.get("/events/v1")
def list_events():
    ident = current_identity()
    items, cursor = service.list_for(clients().db, ident.user_id, after=request.args.get("after"),
                                     type_prefix=request.args.get("type"), limit=request.args.get("limit"))
    return jsonify({"items": items, "next_cursor": cursor})
