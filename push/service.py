"""What phones are told, and to which devices: outbox events become per-device deliveries (CONTRACT §6).

Pure policy over the database and Redis handed in; no Flask. `notify()` is how other functions push
something themselves: it writes an outbox event inside the caller's transaction, so a rolled back write
sends nothing. The relay (push/relay.py) calls `fan_out()`; the worker (push/tasks.py) sends.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from push import sharing
from runtime import devices, events
from runtime.cursor import decode_cursor, encode_cursor
from runtime.errors import ApiError, BadRequest, PayloadTooLarge
from runtime.ids import new_id, utcnow
from runtime.mongo import register_indexes

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096  # FCM's limit for data (+ notification) payloads
SYNC_GAP_MS = 2000  # at most one sync tickle per device per 2 s
JOB_BATCH = 500  # messages per rq job (one send_each call)
DELIVERY_KEEP = timedelta(days=3)  # delivery records readable at GET /mobile/v1/notifications

PAIRING_STATUSES = ("waiting", "done", "failed", "expired")
PUSH_EVENT_TYPES = ("node.changed", "file.committed", "conflict.created", "pairing.status", "device.online",
                    "push.notify", "share.changed")


@dataclass(frozen=True)
class Kind:
    """Per message kind: how long FCM keeps it, Android priority, collapse key (None: every one matters)."""

    ttl_seconds: int
    priority: str
    collapse_key: str | None


KINDS = {
    # a tickle: only the newest matters, and the app syncs on open anyway
    "sync": Kind(3600, "normal", "sync"),
    # the user should see it; each conflict is its own message
    "conflict": Kind(7 * 86400, "high", None),
    # someone stands at the NAS waiting: time-sensitive, pointless after the session ends
    "pairing": Kind(300, "high", None),
    # only the latest on/offline state of a device matters
    "device": Kind(600, "normal", None),
    # a notifier rule fired (functions/notify): a visible notification, each one its own
    "alert": Kind(86400, "high", None),
}
REQUIRED_FIELDS = {
    "sync": ("cursor",),
    "conflict": ("conflict_id", "node_id"),
    "pairing": ("session_id", "status"),
    "device": ("device_id", "online"),
    "alert": ("event_type", "event_id", "title", "body"),
}


@dataclass(frozen=True)
class Intent:
    """One message for all of a user's phones, before fan-out to tokens."""

    kind: str
    data: dict
    notification: tuple[str, str] | None = None
    collapse_key: str | None = None
    exclude_device_id: str | None = None
    sync_seq: int | None = None  # sync tickles carry the journal position; coalesced ones keep the highest


class PushPayloadTooLarge(PayloadTooLarge):
    code = "push_payload_too_large"


def payload_bytes(data: dict, notification: tuple[str, str] | None) -> int:
    body = {"data": data}
    if notification:
        body["notification"] = {"title": notification[0], "body": notification[1]}
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


def check_payload(data: dict, notification: tuple[str, str] | None = None) -> None:
    size = payload_bytes(data, notification)
    if size > MAX_PAYLOAD_BYTES:
        raise PushPayloadTooLarge(f"push payload is {size} bytes; FCM allows {MAX_PAYLOAD_BYTES}",
                                  details={"size": size, "limit": MAX_PAYLOAD_BYTES})


def _s(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def sync_cursor(seq: int) -> str:
    """The changes-feed cursor a tickle carries, in the feed's own opaque format (GET /mobile/v1/changes)."""
    return encode_cursor(seq)


def _sync_seq(cursor) -> int:
    """A journal position from a seq or a cursor the feed handed out (400 for anything else)."""
    if isinstance(cursor, int) or (isinstance(cursor, str) and cursor.isdigit()):
        return int(cursor)
    return decode_cursor(cursor if isinstance(cursor, str) else None)


def intent_from_message(message: dict, exclude_device_id: str | None = None) -> Intent:
    """Validate a CONTRACT §6 message (`{"type": kind, ...fields}`) and make it an Intent."""
    if not isinstance(message, dict):
        raise BadRequest("a push message is a JSON object", code="invalid_push")
    kind = message.get("type")
    if kind not in KINDS:
        raise BadRequest(f"push type must be one of {sorted(KINDS)}", code="invalid_push")
    missing = [f for f in REQUIRED_FIELDS[kind] if message.get(f) in (None, "")]
    if missing:
        raise BadRequest(f"{kind} push needs {', '.join(missing)}", code="invalid_push", details={"missing": missing})
    data = {"type": kind, **{f: _s(message[f]) for f in REQUIRED_FIELDS[kind]}}
    notification = None
    collapse_key = KINDS[kind].collapse_key
    sync_seq = None
    if kind == "conflict":
        notification = (message.get("title") or "Sync conflict",
                        message.get("body") or "Two devices changed the same item; both versions were kept.")
    elif kind == "pairing":
        if data["status"] not in PAIRING_STATUSES:
            raise BadRequest(f"pairing push status must be one of {PAIRING_STATUSES}", code="invalid_push")
        if data["status"] == "waiting":
            notification = ("Pair your NAS", "Press the button on your NAS to finish pairing.")
        collapse_key = f"pairing-{data['session_id']}"
    elif kind == "device":
        collapse_key = f"device-{data['device_id']}"
    elif kind == "alert":
        data.update(subject=_s(message.get("subject")))
        notification = (data.pop("title")[:200], data.pop("body")[:1000])
    elif kind == "sync":
        sync_seq = _sync_seq(message["cursor"])
        data["cursor"] = sync_cursor(sync_seq)
    check_payload(data, notification)
    return Intent(kind, data, notification, collapse_key, exclude_device_id, sync_seq)


def intents_for_event(db, event: dict) -> list[Intent]:
    """The pushes an outbox event causes (empty when it causes none)."""
    etype, p = event["type"], event.get("payload") or {}
    if etype == "node.changed":
        return [_sync_intent(int(p.get("seq") or 0), p.get("device_id"))]
    if etype == "file.committed":
        node = db.nodes.find_one({"_id": p.get("node_id")}, {"seq": 1}) or {}
        seq = node.get("seq")
        if seq is None:
            user = db.users.find_one({"_id": event.get("user_id")}, {"seq": 1}) or {}
            seq = user.get("seq") or 0
        return [_sync_intent(int(seq), p.get("device_id"))]
    if etype == "conflict.created":
        return [intent_from_message({"type": "conflict", "conflict_id": p.get("conflict_id"),
                                     "node_id": p.get("node_id")})]
    if etype == "pairing.status":
        if p.get("status") not in PAIRING_STATUSES:
            return []
        return [intent_from_message({"type": "pairing", "session_id": p.get("session_id"), "status": p["status"]})]
    if etype == "device.online":
        return [intent_from_message({"type": "device", "device_id": p.get("device_id"),
                                     "online": bool(p.get("online"))})]
    if etype == "push.notify":
        return [intent_from_message(p.get("message"), p.get("exclude_device_id"))]
    if etype == "share.changed":  # for the grantee's phones, each with its own position (push/sharing.py)
        return [_sync_intent(0, None)]
    return []


def _sync_intent(seq: int, origin_device_id: str | None) -> Intent:
    return Intent("sync", {"type": "sync", "cursor": sync_cursor(seq)}, None, KINDS["sync"].collapse_key,
                  origin_device_id, seq)


def notify(db, user_id: str, message: dict, session=None, exclude_device_id: str | None = None) -> str:
    """Push `message` (CONTRACT §6 shape) to the user's phones once the caller's transaction commits.

    Validates now (a bad or oversized message raises BadRequest/PushPayloadTooLarge before anything is
    written) and records an outbox event in `session`'s transaction; returns the event id.
    """
    intent_from_message(message, exclude_device_id)
    payload = {"message": message}
    if exclude_device_id:
        payload["exclude_device_id"] = exclude_device_id
    return events.emit(db, "push.notify", user_id, payload, session=session)


# ------------------------------------------------------------------------------------------ fan-out

# Returns the send slot (ms) for a sync tickle to one device. If a tickle is already scheduled in the future,
# join it (coalesce); else the next slot is now, or 2 s after the last one.
_SYNC_SLOT_LUA = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
if last > now then return last end
local slot = math.max(now, last + gap)
redis.call('SET', KEYS[1], slot, 'PX', (slot - now) + gap)
return slot
"""


@register_indexes
def _indexes(db) -> None:
    db.push_deliveries.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
    # the sweeper's query: queued deliveries whose lease (or wait) is over
    db.push_deliveries.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
    db.push_deliveries.create_index([("job", ASCENDING)])
    db.push_deliveries.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)


def delivery_doc(delivery_id: str, event: dict, device: dict, intent: Intent, now: datetime,
                 send_at: datetime, lease_until: datetime) -> dict:
    kind = KINDS[intent.kind]
    doc = {
        "_id": delivery_id, "event_id": event["_id"], "owner": device["owner"], "device_id": device["_id"],
        "token": device["push_token"], "kind": intent.kind, "data": intent.data, "collapse_key": intent.collapse_key,
        "ttl": kind.ttl_seconds, "priority": kind.priority, "status": "queued", "reason": None, "attempts": 0,
        "created_at": now, "updated_at": now, "next_attempt_at": send_at, "lease_until": lease_until,
        "expires_at": now + DELIVERY_KEEP,
    }
    if intent.notification:
        doc["notification"] = list(intent.notification)
    if intent.sync_seq is not None:
        doc["seq"] = intent.sync_seq
    return doc


def phones_by_owner(db, owners) -> dict[str, list[dict]]:
    return devices.phones_by_owner(db, owners)


def fan_out(db, redis, keys, evts: list[dict], lease: timedelta, now: datetime | None = None) -> list[dict]:
    """Record one delivery per (event, phone) and return those to send now (the rest wait for their slot).

    Idempotent: delivery ids derive from the event id, so a relay that died half-way and re-claims the
    event does not record (or send) twice. Deferred sync tickles are keyed by device and slot, so all
    tickles inside one 2 s window become one message carrying the newest cursor.
    """
    now = now or utcnow()
    planned = []  # (event, intent)
    for event in evts:
        try:
            intents = intents_for_event(db, event)
        except (ApiError, ValueError, TypeError) as exc:
            # a malformed event must not block the outbox behind it: say so and move on
            log.warning("outbox event %s (%s) makes no push: %s", event.get("_id"), event.get("type"), exc)
            continue
        planned.extend((event, intent) for intent in intents)
    if not planned:
        return []
    # the owner's phones, and those of the people a changed folder is shared with (push/sharing.py)
    recipients = [(event, intent, event.get("user_id")) for event, intent in planned
                  if event["type"] not in sharing.NOT_FOR_THE_OWNER] + sharing.others(db, planned, _sync_intent)
    phones = phones_by_owner(db, {user for _, _, user in recipients if user})
    now_ms = int(now.timestamp() * 1000)
    targets = [(event, intent, device) for event, intent, user in recipients for device in phones.get(user, [])
               if not (intent.exclude_device_id and device["_id"] == intent.exclude_device_id)]
    targets = _one_sync_per_device(targets)
    # every sync slot in one pipelined round trip
    slots = iter(())
    sync_devices = [device["_id"] for _, intent, device in targets if intent.kind == "sync"]
    if sync_devices:
        slot_script = redis.register_script(_SYNC_SLOT_LUA)
        pipe = redis.pipeline(transaction=False)
        for device_id in sync_devices:
            slot_script(keys=[keys.k("push", "sync-slot", device_id)], args=[now_ms, SYNC_GAP_MS], client=pipe)
        slots = iter([int(slot) for slot in pipe.execute()])
    inserts: dict[str, dict] = {}
    deferred: list[UpdateOne] = []
    for event, intent, device in targets:
        if intent.kind == "sync":
            slot = next(slots)
            if slot > now_ms:
                send_at = datetime.fromtimestamp(slot / 1000, tz=now.tzinfo)
                doc = delivery_doc(f"sync-{device['_id']}-{slot}", event, device, intent, now, send_at, send_at)
                seq = doc.pop("seq", 0)
                doc.pop("data")
                deferred.append(UpdateOne({"_id": doc.pop("_id")},
                                          {"$setOnInsert": doc, "$max": {"seq": seq}, "$inc": {"coalesced": 1}},
                                          upsert=True))
                continue
        delivery_id = f"{event['_id']}-{device['_id']}"
        inserts[delivery_id] = delivery_doc(delivery_id, event, device, intent, now, now, now + lease)
    if deferred:
        db.push_deliveries.bulk_write(deferred, ordered=False)
    if not inserts:
        return []
    docs = list(inserts.values())
    assign_jobs(docs)
    for i in range(0, len(docs), JOB_BATCH):  # one command per job's worth: each answers well within timeouts
        try:
            db.push_deliveries.bulk_write([InsertOne(d) for d in docs[i:i + JOB_BATCH]], ordered=False)
        except BulkWriteError as exc:
            dupes = {e["op"]["_id"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000}
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            # recorded by an earlier relay pass that died before marking its events done: those deliveries
            # are settled, or held by a lease (a job may have them); the sweeper sends them when it ends
            for delivery_id in dupes:
                inserts.pop(delivery_id, None)
    return list(inserts.values())


def _one_sync_per_device(targets: list[tuple]) -> list[tuple]:
    """Of the sync tickles one pass makes for a device, keep only the one with the newest position.

    A commit writes node.changed and file.committed (one position), a batch of ops a node.changed each: one
    tickle with the newest cursor tells the phone all of it. Before, the others became a tickle 2 s later (the
    per-device rule) that held the device's next slot, so the user's next commit waited for it (p99 ~2 s).
    Chosen by (seq, event id), so a relay that claims the same events again picks the same delivery id."""
    best: dict[str, tuple] = {}
    for target in targets:
        event, intent, device = target
        if intent.kind != "sync":
            continue
        kept = best.get(device["_id"])
        if kept is None or (intent.sync_seq or 0, event["_id"]) > (kept[1].sync_seq or 0, kept[0]["_id"]):
            best[device["_id"]] = target
    return [t for t in targets if t[1].kind != "sync" or best[t[2]["_id"]] is t]


def assign_jobs(docs: list[dict]) -> None:
    """Name each delivery's rq job before it is recorded, so the sweeper can tell a job still waiting in
    Redis (leave it) from one that is lost (send again)."""
    for i in range(0, len(docs), JOB_BATCH):
        job_id = f"push-{new_id()}"
        for doc in docs[i:i + JOB_BATCH]:
            doc["job"] = job_id


def message_view(doc: dict) -> dict:
    """A delivery as the owner reads it at GET /mobile/v1/notifications."""
    from runtime.ids import iso

    return {
        "id": doc["_id"], "device_id": doc.get("device_id"), "kind": doc.get("kind"), "status": doc.get("status"),
        "reason": doc.get("reason"), "attempts": doc.get("attempts", 0), "data": message_data(doc),
        "notification": ({"title": doc["notification"][0], "body": doc["notification"][1]}
                         if doc.get("notification") else None),
        "created_at": iso(doc.get("created_at")), "updated_at": iso(doc.get("updated_at")),
        "sent_at": iso(doc.get("sent_at")), "next_attempt_at": iso(doc.get("next_attempt_at"))
        if doc.get("status") == "queued" else None,
    }


def message_data(doc: dict) -> dict:
    """The data payload; a coalesced sync tickle carries the newest cursor of the tickles it merged."""
    if doc.get("kind") == "sync":
        return {"type": "sync", "cursor": sync_cursor(int(doc.get("seq") or 0))}
    return doc.get("data") or {}
