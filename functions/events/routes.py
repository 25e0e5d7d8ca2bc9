"""HTTP for /events/v1: parse, call the service, shape JSON. The owner is the gateway's identity."""

from __future__ import annotations

from flask import jsonify, request

from functions.events import service
from functions.events.schemas import EventPage, EventQuery
from runtime.app import clients
from runtime.identity import current_identity
from runtime.schemas import Api

api = Api("events", import_name=__name__)
bp = api.blueprint


@api.get("/events/v1", operation_id="listEvents", summary="The caller's events, oldest first", query=EventQuery,
         responses={200: EventPage, 400: "invalid_parameter"})
def list_events():
    ident = current_identity()
    items, cursor = service.list_for(clients().db, ident.user_id, after=request.args.get("after"),
                                     type_prefix=request.args.get("type"), limit=request.args.get("limit"))
    return jsonify({"items": items, "next_cursor": cursor})
