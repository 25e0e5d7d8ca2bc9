"""Phone registry and push debugging: /mobile/v1/devices, …/push-token, /mobile/v1/notifications (CONTRACT §5, §6).

Thin: parse, call push.registry, shape JSON.
"""

from __future__ import annotations

from flask import jsonify, request

from mobile_api.schemas import DeliveryPage, NewPhone, NotificationsQuery, PhoneRegistered, PushToken
from push import registry
from runtime import refresh
from runtime.app import clients, page_params
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("mobile_devices", tag="mobile", import_name=__name__)
bp = api.blueprint


@api.post("/mobile/v1/devices", operation_id="registerPhone",
          summary="Register this phone (and its FCM registration token)", body=NewPhone,
          responses={201: PhoneRegistered, 400: "invalid_name, invalid_platform, invalid_push_token"})
def register_device():
    ident = current_identity()
    phone = body(NewPhone)
    db = clients().db
    device_id = registry.register_phone(db, ident.user_id, phone.name, phone.platform, phone.push_token)
    if ident.via == "bearer" and ident.client_id == "pcloud" and ident.session_id:
        refresh.bind_device(db, ident.user_id, ident.session_id, device_id)  # deleting the device signs it out
    return jsonify(device_id=device_id), 201


@api.put("/mobile/v1/devices/<device_id>/push-token", operation_id="setPushToken",
         summary="Replace this phone's FCM registration token", body=PushToken,
         responses={204: "stored", 400: "invalid_push_token", 404: "not your phone"})
def put_push_token(device_id: str):
    ident = current_identity()
    registry.set_push_token(clients().db, ident.user_id, device_id, body(PushToken).push_token)
    return "", 204


@api.get("/mobile/v1/notifications", operation_id="listNotifications",
         summary="Recent push deliveries to your phones (queued, sent, failed with reason), newest first",
         query=NotificationsQuery, responses={200: DeliveryPage, 400: "invalid_cursor or invalid_limit"})
def notifications():
    ident = current_identity()
    cursor, limit = page_params(default_limit=50, max_limit=500)
    return jsonify(registry.list_deliveries(clients().db, ident.user_id, cursor, limit,
                                            request.args.get("device_id") or None))
