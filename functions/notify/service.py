"""The notifier (seed 004): rules per user turn events of the one log into pushes and signed webhook deliveries.

Plain Python, no Flask. The parts:
- `handle_events` — the `notify` consumer of the event log (worker.py runs it): for each event a user's rules or
  webhooks care about, the webhook delivery records and the push (push/service.notify, an outbox event) are
  written in one transaction, keyed per (target, event), so an event handled twice delivers nothing twice;
- `delivering.Deliverer` — sends due webhook deliveries (signing.py, netguard.py), retries with exponential backoff (or
  later, when a 429/503 answer's Retry-After asks), gives up after PCLOUD_WEBHOOK_MAX_ATTEMPTS, and disables a
  webhook after PCLOUD_WEBHOOK_DISABLE_AFTER failed attempts in a row or at once on 410 Gone (with a
  `notify.webhook.disabled` event, which itself reaches the owner's phones);
- `NotifyService` — the API: webhooks (create, list, get, update, delete, rotate secret, ping, delivery log),
  push rules, and (admins) the networks webhooks may reach although not public.
Collections: webhooks.py, deliveries.py, rules.py, allowlist.py (one owner module each); sending: delivering.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime, timedelta
from functools import partial

from functions.notify import allowlist, deliveries, rules, signing, webhooks
from functions.notify.delivering import send_signed, sender_for
from functions.notify.netguard import Refused, SafeHttpSender, check_url
from push import service as push_service
from runtime import events
from runtime.errors import BadRequest, Conflict, NotFound
from runtime.ids import as_utc, iso, new_id, utcnow
from runtime.mongo import transaction

log = logging.getLogger(__name__)

# What a rule or a webhook may name: event type -> (what it means, pushed to phones unless the user chose).
EVENT_TYPES: dict[str, tuple[str, bool]] = {
    "devices.device.offline": ("A NAS went offline (silent for 90 s)", True),
    "devices.device.online": ("A NAS came back online", False),
    "devices.device.paired": ("A NAS was paired to you", False),
    "devices.device.unpaired": ("A device was unpaired", False),
    "pairing.session.done": ("A pairing session succeeded", False),
    "pairing.session.failed": ("A pairing session failed (no answer, rejected, paired elsewhere)", False),
    "pairing.session.expired": ("A pairing session expired (nobody pressed the button)", False),
    "apps.execution.dead": ("An app's execution gave up (dead)", True),
    "storage.volume.nearly_full": ("The box's data volume is nearly full (admins)", True),
    "notify.webhook.disabled": ("One of your webhooks was disabled after repeated failures", True),
}
DEFAULT_PUSH = tuple(t for t, (_, push) in EVENT_TYPES.items() if push)
PING_TYPE = "notify.webhook.ping"
ROTATE_GRACE_DEFAULT = 86400
ROTATE_GRACE_MAX = 7 * 86400
DELIVERY_KEEP = timedelta(days=30)


# ------------------------------------------------------------------------------------------------- texts


def _device_name(data: dict) -> str:
    device = data.get("device") or {}
    return device.get("name") or device.get("serial") or "Your device"


def alert_text(event: dict) -> tuple[str, str]:
    """(title, body) of the phone notification for an event."""
    t, data = event["type"], event.get("data") or {}
    if t == "devices.device.offline":
        return "NAS offline", f"{_device_name(data)} has not been heard from for 90 seconds."
    if t == "devices.device.online":
        return "NAS online", f"{_device_name(data)} is online again."
    if t == "devices.device.paired":
        return "NAS paired", f"{_device_name(data)} is now paired to your account."
    if t == "devices.device.unpaired":
        return "Device unpaired", f"{_device_name(data)} was unpaired."
    if t.startswith("pairing.session."):
        status = t.rsplit(".", 1)[1]
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"Pairing {status}", f"Pairing NAS {data.get('serial', '?')}: {status}{reason}."
    if t == "apps.execution.dead":
        ex = data.get("execution") or {}
        return "An app action failed", (f"{ex.get('app')} {ex.get('action')} gave up after {ex.get('attempts')} "
                                        f"attempts: {ex.get('error') or 'no reason given'}")[:300]
    if t == "storage.volume.nearly_full":
        return "Storage nearly full", (f"The data volume is {data.get('used_percent')}% full "
                                       f"({_gib(data.get('free_bytes'))} free).")
    if t == "notify.webhook.disabled":
        hook = data.get("webhook") or {}
        return "Webhook disabled", (f"{hook.get('url')} failed {hook.get('consecutive_failures')} times in a row "
                                    "and was disabled.")[:300]
    return t, event.get("subject") or ""


def _gib(value) -> str:
    return f"{(value or 0) / 2**30:.1f} GiB"


def alert_message(event: dict) -> dict:
    title, body = alert_text(event)
    return {"type": "alert", "event_type": event["type"], "event_id": event["id"], "subject": event["subject"],
            "title": title, "body": body}


def delivery_body(event: dict, webhook_id: str, delivery_id: str) -> str:
    """What a webhook receives (docs/webhooks.md): the event as GET /events/v1 shows it, named by delivery."""
    return json.dumps({"id": delivery_id, "type": event["type"], "webhook_id": webhook_id, "event": event},
                      separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------------------- the consumer


def push_types_for(db, owner: str) -> tuple[str, ...]:
    chosen = rules.push_types(db, owner)
    return DEFAULT_PUSH if chosen is None else tuple(chosen)


def handle_events(db, mongo, docs: list[dict], clock=utcnow) -> int:
    """The `notify` consumer's batch (events as stored). Returns how many webhook deliveries it made."""
    wanted = [d for d in docs if d["type"] in EVENT_TYPES]
    if not wanted:
        return 0
    existing = deliveries.existing_keys(db, [d["_id"] for d in wanted])
    push_cache: dict[str, tuple[str, ...]] = {}
    created = 0
    for doc in wanted:
        owner, event = doc["owner"], events.public(doc)
        hooks = webhooks.subscribed(db, owner, doc["type"])
        if doc["type"] == "notify.webhook.disabled":
            hooks = [h for h in hooks if h["_id"] != doc["subject"]]  # not to the webhook that just failed
        now = clock()
        new = [deliveries.new_webhook_delivery(owner, h["_id"], doc["_id"], doc["type"],
                                               partial(delivery_body, event, h["_id"]), now)
               for h in hooks if f"{h['_id']}:{doc['_id']}" not in existing]
        if owner not in push_cache:
            push_cache[owner] = push_types_for(db, owner)
        push = doc["type"] in push_cache[owner] and f"push:{doc['_id']}" not in existing
        if not new and not push:
            continue

        def work(session, new=new, push=push, owner=owner, event=event, now=now):
            deliveries.insert(db, new, session)
            if push:
                deliveries.insert(db, [deliveries.new_push_delivery(owner, event["id"], event["type"], now)],
                                  session)
                push_service.notify(db, owner, alert_message(event), session=session)

        transaction(mongo, work)
        created += len(new)
    return created


# ------------------------------------------------------------------------------------------ the API


def webhook_view(doc: dict) -> dict:
    out = {"id": doc["_id"], "url": doc["url"], "events": list(doc.get("events") or []),
           "description": doc.get("description") or "", "state": doc.get("state", "enabled"),
           "consecutive_failures": int(doc.get("consecutive_failures") or 0),
           "created_at": iso(doc.get("created_at")), "updated_at": iso(doc.get("updated_at")),
           "last_attempt_at": iso(doc.get("last_attempt_at")), "last_status": doc.get("last_status"),
           "last_error": doc.get("last_error")}
    if doc.get("state") == "disabled":
        out.update(disabled_reason=doc.get("disabled_reason"), disabled_at=iso(doc.get("disabled_at")))
    if doc.get("previous_secret_until"):
        out["previous_secret_until"] = iso(doc["previous_secret_until"])
    return out


def delivery_view(doc: dict) -> dict:
    def attempt(a: dict | None) -> dict | None:
        if not a:
            return None
        return {"at": iso(a.get("at")), "status": a.get("status"), "error": a.get("error"),
                "duration_ms": a.get("duration_ms"), "answer": a.get("answer", ""),
                "retry_after": a.get("retry_after"), "note": a.get("note")}

    return {"id": doc["_id"], "webhook_id": doc.get("webhook_id"), "event_id": doc.get("event_id"),
            "event_type": doc.get("event_type"), "state": doc.get("state"), "attempts": int(doc.get("attempts") or 0),
            "created_at": iso(doc.get("created_at")), "updated_at": iso(doc.get("updated_at")),
            "delivered_at": iso(doc.get("delivered_at")), "next_attempt_at": iso(doc.get("next_attempt_at")),
            "last": attempt(doc.get("last")) if isinstance(doc.get("last"), dict) and doc["last"].get("at") else None,
            "history": [attempt(a) for a in doc.get("history") or []]}


def _encode_cursor(doc: dict) -> str:
    at = as_utc(doc["created_at"])
    raw = f"{int(at.timestamp() * 1000)}:{doc['_id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        ms, did = raw.split(":", 1)
        return datetime.fromtimestamp(int(ms) / 1000, UTC), did
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this endpoint handed out", code="invalid_cursor") from None


def check_events(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequest("events must be a non-empty list of event types (or [\"*\"])", code="invalid_events")
    unknown = [v for v in value if v != "*" and v not in EVENT_TYPES]
    if unknown:
        raise BadRequest(f"unknown event types: {', '.join(map(str, unknown))[:200]}", code="invalid_events",
                         details={"unknown": unknown, "known": list(EVENT_TYPES)})
    return list(dict.fromkeys(value))


class NotifyService:
    """What /notify/v1 does for one caller; `sender` checks and sends (its policy is the SSRF rule)."""

    def __init__(self, db, mongo, settings, sender: SafeHttpSender | None = None, clock=utcnow):
        self.db = db
        self.mongo = mongo
        self.settings = settings
        self.sender = sender or sender_for(settings, db=db)
        self.clock = clock

    def _check_url(self, url) -> str:
        try:
            check_url(url, self.sender.policy, self.sender.resolver)
        except Refused as exc:
            raise BadRequest(str(exc), code=exc.code, details=exc.details) from None
        return url.strip()

    def _owned(self, owner: str, webhook_id: str) -> dict:
        doc = webhooks.get_owned(self.db, owner, webhook_id)
        if doc is None:
            raise NotFound("no such webhook", code="not_found")
        return doc

    def create_webhook(self, owner: str, url, events_, description: str = "") -> dict:
        events_ = check_events(events_)
        url = self._check_url(url)
        if webhooks.count_owned(self.db, owner) >= webhooks.MAX_PER_OWNER:
            raise Conflict(f"at most {webhooks.MAX_PER_OWNER} webhooks per account", code="too_many_webhooks")
        secret = signing.new_secret()
        doc = webhooks.insert(self.db, owner, url, events_, description or "", secret, self.clock())
        return {**webhook_view(doc), "secret": secret}

    def list_webhooks(self, owner: str, cursor: str | None, limit: int) -> dict:
        if cursor and len(cursor) > 64:
            raise BadRequest("cursor is not one this endpoint handed out", code="invalid_cursor")
        docs, more = webhooks.list_owned(self.db, owner, cursor, limit)
        return {"items": [webhook_view(d) for d in docs], "next_cursor": docs[-1]["_id"] if more and docs else None}

    def get_webhook(self, owner: str, webhook_id: str) -> dict:
        return webhook_view(self._owned(owner, webhook_id))

    def update_webhook(self, owner: str, webhook_id: str, *, url=None, events_=None, description=None,
                       enabled: bool | None = None) -> dict:
        self._owned(owner, webhook_id)
        fields: dict = {}
        if url is not None:
            fields["url"] = self._check_url(url)
        if events_ is not None:
            fields["events"] = check_events(events_)
        if description is not None:
            fields["description"] = description
        now = self.clock()
        doc = webhooks.update_owned(self.db, owner, webhook_id, fields, now) if fields else self._owned(owner,
                                                                                                         webhook_id)
        if enabled is True and doc is not None and doc.get("state") != "enabled":
            doc = webhooks.enable(self.db, owner, webhook_id, now)
        elif enabled is False and doc is not None and doc.get("state") == "enabled":
            webhooks.update_owned(self.db, owner, webhook_id, {"state": "disabled", "disabled_reason": "by you",
                                                               "disabled_at": now}, now)
            deliveries.kill_open(self.db, webhook_id, "webhook disabled", now)
            doc = self._owned(owner, webhook_id)
        if doc is None:
            raise NotFound("no such webhook", code="not_found")
        return webhook_view(doc)

    def delete_webhook(self, owner: str, webhook_id: str) -> None:
        if not webhooks.delete_owned(self.db, owner, webhook_id):
            raise NotFound("no such webhook", code="not_found")
        deliveries.forget_webhook(self.db, webhook_id)

    def rotate_secret(self, owner: str, webhook_id: str, grace_seconds: int | None = None) -> dict:
        grace = ROTATE_GRACE_DEFAULT if grace_seconds is None else grace_seconds
        if not 0 <= grace <= ROTATE_GRACE_MAX:
            raise BadRequest(f"grace_seconds must be between 0 and {ROTATE_GRACE_MAX}", code="invalid_grace")
        self._owned(owner, webhook_id)
        now = self.clock()
        secret = signing.new_secret()
        doc = webhooks.rotate(self.db, owner, webhook_id, secret, now + timedelta(seconds=grace) if grace else None,
                              now)
        if doc is None:
            raise Conflict("the secret changed meanwhile; try again", code="conflict")
        return {**webhook_view(doc), "secret": secret}

    def list_deliveries(self, owner: str, webhook_id: str, cursor: str | None, limit: int) -> dict:
        self._owned(owner, webhook_id)
        docs, more = deliveries.page_for_webhook(self.db, webhook_id, _decode_cursor(cursor), limit)
        return {"items": [delivery_view(d) for d in docs],
                "next_cursor": _encode_cursor(docs[-1]) if more and docs else None}

    def ping(self, owner: str, webhook_id: str) -> dict:
        """One signed `notify.webhook.ping` now (also to a disabled webhook: it tests the endpoint); logged,
        never retried, and it does not count towards disabling."""
        hook = self._owned(owner, webhook_id)
        now = self.clock()
        event = {"id": new_id(), "type": PING_TYPE, "subject": hook["_id"], "owner": owner, "time": iso(now),
                 "data": {"webhook": {"id": hook["_id"], "url": hook["url"]}}}
        doc = deliveries.new_webhook_delivery(owner, hook["_id"], event["id"], PING_TYPE,
                                              partial(delivery_body, event, hook["_id"]), now)
        doc.update(state="delivering", attempts=1, next_attempt_at=None)
        deliveries.insert(self.db, [doc])
        answer = send_signed(self.sender, hook, doc["_id"], PING_TYPE, doc["body"], now)
        done = self.clock()
        attempt = {"at": done, "status": answer.status, "error": answer.error, "duration_ms": answer.duration_ms,
                   "answer": answer.body[:512]}
        fields = {"state": "delivered" if answer.ok else "dead", "last": attempt, "updated_at": done}
        if answer.ok:
            fields["delivered_at"] = done
        deliveries.finish(self.db, doc, fields, attempt)
        return delivery_view(deliveries.get(self.db, doc["_id"]))

    def get_rules(self, owner: str) -> dict:
        chosen = rules.push_types(self.db, owner)
        push = DEFAULT_PUSH if chosen is None else tuple(chosen)
        return {"push": list(push), "defaults": chosen is None,
                "event_types": [{"type": t, "description": d, "push": t in push, "push_default": default}
                                for t, (d, default) in EVENT_TYPES.items()]}

    def set_rules(self, owner: str, push) -> dict:
        if not isinstance(push, list):
            raise BadRequest("push must be a list of event types", code="invalid_events")
        push = check_events(push) if push else []
        if "*" in push:
            push = list(EVENT_TYPES)
        rules.set_push_types(self.db, owner, push, self.clock())
        return self.get_rules(owner)

    # ------------------------------------------------------------------ admins: networks webhooks may reach

    def allowed_networks(self) -> dict:
        doc = allowlist.load(self.db)
        return {"networks": list(doc.get("networks") or []), "from_settings": list(self.settings.webhook_allow_nets),
                "updated_at": iso(doc.get("updated_at")), "updated_by": doc.get("updated_by")}

    def set_allowed_networks(self, admin_id: str, networks) -> dict:
        """Replace the admins' list (checked strictly: allowlist.check); a change is audited in the event log
        (`notify.allowlist.changed`, owner = the admin) in the same transaction. The next check uses it."""
        wanted = allowlist.check(networks)
        now = self.clock()

        def work(session):
            before = allowlist.save(self.db, wanted, admin_id, now, session=session)
            if before != wanted:
                events.append(self.db, owner=admin_id, type="notify.allowlist.changed", subject=allowlist.DOC_ID,
                              data={"networks": wanted, "previous": before,
                                    "added": [n for n in wanted if n not in before],
                                    "removed": [n for n in before if n not in wanted]}, session=session)
            return before

        before = transaction(self.mongo, work)
        allowlist.changed()
        if before != wanted:
            log.warning("webhook allowed networks changed by %s: %s (was %s)", admin_id, wanted or "none",
                        before or "none")
        return self.allowed_networks()
