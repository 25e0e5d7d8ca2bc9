"""Request and response models of /notify/v1 (webhooks, their delivery log, push rules, admins' allowed networks)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from runtime.schemas import Body, Query, omittable

EVENTS_DOC = ("event types to deliver (GET /notify/v1/rules lists them), or [\"*\"] for all: "
              "devices.device.offline|online|paired|unpaired, pairing.session.done|failed|expired, "
              "apps.execution.dead, storage.volume.nearly_full, notify.webhook.disabled")


class NewWebhook(Body):
    """A webhook: PCloud POSTs each matching event to `url`, signed with the secret returned once."""

    error_codes = {"url": "invalid_url", "events": "invalid_events", "description": "invalid_description"}
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/pcloud-hook"],
                     description="http(s); must resolve to public addresses only (unless an admin allowed the "
                                 "network: /notify/v1/admin/allowed-networks or PCLOUD_WEBHOOK_ALLOW_NETS)")
    events: list[str] = Field(min_length=1, max_length=32, description=EVENTS_DOC)
    description: str = Field("", max_length=200)


class WebhookPatch(Body):
    """What may change; absent fields stay. `enabled: true` re-enables a disabled webhook (failures reset)."""

    error_codes = {"url": "invalid_url", "events": "invalid_events", "description": "invalid_description",
                   "enabled": "invalid_request"}
    url: str = omittable(min_length=1, max_length=2048)
    events: list[str] = omittable(min_length=1, max_length=32, description=EVENTS_DOC)
    description: str = omittable(max_length=200)
    enabled: bool = omittable()


class RotateSecret(Body):
    error_codes = {"grace_seconds": "invalid_grace"}
    grace_seconds: int = omittable(ge=0, le=7 * 86400, description="how long the old secret still signs "
                                                                    "alongside the new one (default 86400)")


class Webhook(BaseModel):
    """A webhook (its secret is shown only when created or rotated)."""

    id: str
    url: str
    events: list[str]
    description: str
    state: str = Field(description="enabled | disabled")
    consecutive_failures: int
    created_at: str | None
    updated_at: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    disabled_reason: str | None = None
    disabled_at: str | None = None
    previous_secret_until: str | None = Field(None, description="the old secret signs too until then")


class WebhookWithSecret(Webhook):
    """A webhook and its signing secret: keep it, it is not shown again."""

    secret: str = Field(description="HMAC-SHA256 key of the PCloud-Signature header (docs/webhooks.md)")


class WebhookPage(BaseModel):
    items: list[Webhook]
    next_cursor: str | None


class WebhookAttempt(BaseModel):
    at: str | None
    status: int | None = Field(description="the receiver's HTTP status; null when no answer came")
    error: str | None
    duration_ms: int | None
    answer: str = Field(description="the first 512 bytes of the receiver's answer")
    retry_after: str | None = Field(None, description="the Retry-After header of a 429 or 503 answer, as sent")
    note: str | None = Field(None, description="what the notifier did about it: the next attempt's delay (Retry-After "
                                               "honoured, or ignored when malformed or over an hour), or why "
                                               "there is none (410 Gone disables the webhook)")


class WebhookDelivery(BaseModel):
    """One event to one webhook: its state and its attempts (the newest 10)."""

    id: str
    webhook_id: str | None
    event_id: str | None
    event_type: str | None
    state: str = Field(description="pending | delivering | failed (will retry) | delivered | dead")
    attempts: int
    created_at: str | None
    updated_at: str | None
    delivered_at: str | None
    next_attempt_at: str | None
    last: WebhookAttempt | None
    history: list[WebhookAttempt]


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDelivery]
    next_cursor: str | None


class PageQuery(Query):
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=200)


class NotifyRulesUpdate(Body):
    """Which event types reach your phones (webhooks choose their own)."""

    error_codes = {"push": "invalid_events"}
    push: list[str] = Field(max_length=32, description="event types; [] = none, [\"*\"] = all")


class NotifyEventType(BaseModel):
    type: str
    description: str
    push: bool = Field(description="reaches your phones")
    push_default: bool


class NotifyRules(BaseModel):
    """Your notification rules."""

    push: list[str]
    defaults: bool = Field(description="true while you never chose (the defaults apply)")
    event_types: list[NotifyEventType]


class AllowedNetworksUpdate(Body):
    """The whole list of networks webhooks may reach although not public (replaces the previous one)."""

    error_codes = {"networks": "invalid_networks"}
    networks: list[str] = Field(max_length=64, examples=[["192.168.1.0/24", "127.0.0.1/32"]],
                                description="CIDR networks (a bare address = its /32 or /128); at most a /8 each; "
                                            "loopback only listed on its own (127.0.0.1/32); [] = none")


class AllowedNetworks(BaseModel):
    """Non-public networks every webhook may reach: the admins' list (this API) and the operator's setting."""

    networks: list[str] = Field(description="what admins allowed here")
    from_settings: list[str] = Field(description="PCLOUD_WEBHOOK_ALLOW_NETS (read-only here; change it in the "
                                                 "environment)")
    updated_at: str | None
    updated_by: str | None = Field(description="the admin who last changed the list")
