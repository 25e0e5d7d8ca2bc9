"""HTTP side of /notify/v1: parse, call NotifyService, shape JSON."""

from __future__ import annotations

from flask import current_app, jsonify

from functions.notify.delivering import sender_for
from functions.notify.schemas import (
    AllowedNetworks,
    AllowedNetworksUpdate,
    NewWebhook,
    NotifyRules,
    NotifyRulesUpdate,
    PageQuery,
    RotateSecret,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookPage,
    WebhookPatch,
    WebhookWithSecret,
)
from functions.notify.service import NotifyService
from runtime.app import clients, page_params
from runtime.errors import Forbidden
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("notify", import_name=__name__)
NOT_FOUND = "no such webhook (or not yours)"
FORBIDDEN = "forbidden: not an admin"
NETWORK_ERRORS = ("invalid_networks (not a list, over 64) | invalid_network (not CIDR, host bits set; details.network, "
                  "details.index) | network_too_broad (wider than a /8, 0.0.0.0/0, ::/0, all of IPv4-mapped IPv6, "
                  "or holding loopback without being a loopback network) | network_not_allowed (0.0.0.0/8, ::)")
URL_ERRORS = ("invalid_url | url_not_allowed (resolves to a loopback, private, link-local or other non-public "
              "address; details.address, details.reason) | url_unresolvable | invalid_events")


def _service() -> NotifyService:
    """One sender per app (its connection pools and resolver are shared by requests)."""
    c = clients()
    sender = current_app.extensions.get("pcloud_notify_sender")
    if sender is None:
        sender = current_app.extensions.setdefault("pcloud_notify_sender", sender_for(c.settings, db=c.db))
    return NotifyService(c.db, c.mongo, c.settings, sender)


def _me() -> str:
    return current_identity().user_id


@api.post("/notify/v1/webhooks", operation_id="createWebhook", summary="Add a webhook (the secret is shown once)",
          body=NewWebhook, responses={201: WebhookWithSecret, 400: URL_ERRORS,
                                      409: "too_many_webhooks (20 per account)"})
def create_webhook():
    new = body(NewWebhook)
    return jsonify(_service().create_webhook(_me(), new.url, new.events, new.description)), 201


@api.get("/notify/v1/webhooks", operation_id="listWebhooks", summary="Your webhooks", query=PageQuery,
         responses={200: WebhookPage})
def list_webhooks():
    cursor, limit = page_params(default_limit=50, max_limit=200)
    return jsonify(_service().list_webhooks(_me(), cursor, limit))


@api.get("/notify/v1/webhooks/<webhook_id>", operation_id="getWebhook", summary="A webhook",
         responses={200: Webhook, 404: NOT_FOUND})
def get_webhook(webhook_id: str):
    return jsonify(_service().get_webhook(_me(), webhook_id))


@api.patch("/notify/v1/webhooks/<webhook_id>", operation_id="updateWebhook",
           summary="Change a webhook's URL, events or description; enable or disable it", body=WebhookPatch,
           responses={200: Webhook, 400: URL_ERRORS, 404: NOT_FOUND})
def update_webhook(webhook_id: str):
    patch = body(WebhookPatch)
    return jsonify(_service().update_webhook(_me(), webhook_id, url=patch.url, events_=patch.events,
                                             description=patch.description, enabled=patch.enabled))


@api.delete("/notify/v1/webhooks/<webhook_id>", operation_id="deleteWebhook",
            summary="Delete a webhook and its delivery log", responses={204: "deleted", 404: NOT_FOUND})
def delete_webhook(webhook_id: str):
    _service().delete_webhook(_me(), webhook_id)
    return "", 204


@api.post("/notify/v1/webhooks/<webhook_id>/rotate-secret", operation_id="rotateWebhookSecret",
          summary="A new signing secret; the old one also signs for grace_seconds (default a day)",
          body=RotateSecret, body_required=False,
          responses={200: WebhookWithSecret, 400: "invalid_grace", 404: NOT_FOUND})
def rotate_secret(webhook_id: str):
    req = body(RotateSecret)
    return jsonify(_service().rotate_secret(_me(), webhook_id, req.grace_seconds if req else None))


@api.post("/notify/v1/webhooks/<webhook_id>/ping", operation_id="pingWebhook",
          summary="Send a signed notify.webhook.ping now and answer with its delivery (once, no retry)",
          responses={200: WebhookDelivery, 404: NOT_FOUND})
def ping_webhook(webhook_id: str):
    return jsonify(_service().ping(_me(), webhook_id))


@api.get("/notify/v1/webhooks/<webhook_id>/deliveries", operation_id="listWebhookDeliveries",
         summary="A webhook's delivery log, newest first", query=PageQuery,
         responses={200: WebhookDeliveryPage, 400: "invalid_cursor", 404: NOT_FOUND})
def list_deliveries(webhook_id: str):
    cursor, limit = page_params(default_limit=50, max_limit=200)
    return jsonify(_service().list_deliveries(_me(), webhook_id, cursor, limit))


@api.get("/notify/v1/rules", operation_id="getNotifyRules", summary="Which events reach your phones",
         responses={200: NotifyRules})
def get_rules():
    return jsonify(_service().get_rules(_me()))


@api.put("/notify/v1/rules", operation_id="setNotifyRules", summary="Choose which events reach your phones",
         body=NotifyRulesUpdate, responses={200: NotifyRules, 400: "invalid_events"})
def set_rules():
    return jsonify(_service().set_rules(_me(), body(NotifyRulesUpdate).push))


def _admin() -> str:
    """The gateway already asked for the `admin` scope (routing.py); this holds for direct deployments."""
    identity = current_identity()
    if not identity.is_admin:
        raise Forbidden("only an admin may do this", code="forbidden", details={"required": "admin"})
    return identity.user_id


@api.get("/notify/v1/admin/allowed-networks", operation_id="getWebhookAllowedNetworks",
         summary="Networks webhooks may reach although not public (admins)",
         responses={200: AllowedNetworks, 403: FORBIDDEN})
def get_allowed_networks():
    _admin()
    return jsonify(_service().allowed_networks())


@api.put("/notify/v1/admin/allowed-networks", operation_id="setWebhookAllowedNetworks",
         summary="Replace the networks webhooks may reach although not public (admins; audited, effective at once)",
         body=AllowedNetworksUpdate, responses={200: AllowedNetworks, 400: NETWORK_ERRORS, 403: FORBIDDEN})
def set_allowed_networks():
    admin = _admin()
    return jsonify(_service().set_allowed_networks(admin, body(AllowedNetworksUpdate).networks))
