"""Owner of the `notify_deliveries` collection: one record per (target, event), the queue and the delivery log.

`{_id, key, owner, channel: webhook|push, webhook_id?, event_id, event_type, body?, state, attempts,
next_attempt_at, claim?, lease_until?, created_at, updated_at, delivered_at?, last?, history: [attempt…]}`;
`state` ∈ pending (due at next_attempt_at) | delivering (leased) | failed (will retry) | delivered | dead.
`key` (`<webhook id>:<event id>`, `push:<event id>`) is unique: handling an event twice (at least once) adds
nothing. The body is frozen when the record is made, so every retry signs the same bytes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING

from runtime.ids import new_id
from runtime.mongo import register_indexes

HISTORY_KEEP = 10  # attempts kept per record (the newest)
OPEN = ("pending", "failed", "delivering")


@register_indexes
def _indexes(db) -> None:
    db.notify_deliveries.create_index([("key", ASCENDING)], unique=True)
    db.notify_deliveries.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    db.notify_deliveries.create_index([("webhook_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)])
    db.notify_deliveries.create_index([("event_id", ASCENDING)])
    db.notify_deliveries.create_index([("created_at", ASCENDING)])


def new_webhook_delivery(owner: str, webhook_id: str, event_id: str, event_type: str, body_of, now: datetime,
                         delivery_id: str | None = None) -> dict:
    """`body_of(delivery_id)` makes the JSON body (it names its own delivery)."""
    delivery_id = delivery_id or new_id()
    return {"_id": delivery_id, "key": f"{webhook_id}:{event_id}", "owner": owner, "channel": "webhook",
            "webhook_id": webhook_id, "event_id": event_id, "event_type": event_type, "body": body_of(delivery_id),
            "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now,
            "history": []}


def new_push_delivery(owner: str, event_id: str, event_type: str, now: datetime) -> dict:
    """Push is handed to the push pipeline in the same transaction; this records that it was."""
    return {"_id": new_id(), "key": f"push:{event_id}", "owner": owner, "channel": "push", "event_id": event_id,
            "event_type": event_type, "state": "delivered", "attempts": 1, "next_attempt_at": None,
            "created_at": now, "updated_at": now, "delivered_at": now, "history": []}


def existing_keys(db, event_ids: list[str]) -> set[str]:
    return {d["key"] for d in db.notify_deliveries.find({"event_id": {"$in": event_ids}}, {"key": 1})}


def insert(db, docs: list[dict], session=None) -> None:
    if docs:
        db.notify_deliveries.insert_many(docs, session=session)


def claim_due(db, limit: int, lease_seconds: float, now: datetime) -> list[dict]:
    """Lease up to `limit` due records (pending/failed and due, or delivering with a lapsed lease)."""
    query = {"$or": [{"state": {"$in": ["pending", "failed"]}, "next_attempt_at": {"$lte": now}},
                     {"state": "delivering", "lease_until": {"$lt": now}}]}
    ids = [d["_id"] for d in db.notify_deliveries.find(query, {"_id": 1}).sort("next_attempt_at", ASCENDING)
           .limit(limit)]
    if not ids:
        return []
    token = new_id()
    db.notify_deliveries.update_many(
        {"_id": {"$in": ids}, **query},
        {"$set": {"state": "delivering", "claim": token, "lease_until": now + timedelta(seconds=lease_seconds)},
         "$inc": {"attempts": 1}})
    return list(db.notify_deliveries.find({"_id": {"$in": ids}, "claim": token}))


def finish(db, doc: dict, fields: dict, attempt: dict | None) -> bool:
    """Record an attempt's outcome, only while this claim still holds it (a lapsed lease changes nothing)."""
    change: dict = {"$set": fields, "$unset": {"claim": "", "lease_until": ""}}
    if attempt is not None:
        change["$push"] = {"history": {"$each": [attempt], "$slice": -HISTORY_KEEP}}
    query = {"_id": doc["_id"]}
    if doc.get("claim"):
        query["claim"] = doc["claim"]
    return db.notify_deliveries.update_one(query, change).modified_count > 0


def get(db, delivery_id: str) -> dict | None:
    return db.notify_deliveries.find_one({"_id": delivery_id})


def page_for_webhook(db, webhook_id: str, before: tuple[datetime, str] | None, limit: int) -> tuple[list[dict], bool]:
    """The webhook's deliveries, newest first, before the (created_at, id) cursor."""
    query: dict = {"webhook_id": webhook_id}
    if before is not None:
        at, did = before
        query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": did}}]
    docs = list(db.notify_deliveries.find(query, {"body": 0}).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
                .limit(limit + 1))
    return docs[:limit], len(docs) > limit


def kill_open(db, webhook_id: str, reason: str, now: datetime) -> int:
    """A disabled or deleted webhook's undelivered records end dead (they stay in the log)."""
    return db.notify_deliveries.update_many(
        {"webhook_id": webhook_id, "state": {"$in": list(OPEN)}},
        {"$set": {"state": "dead", "next_attempt_at": None, "updated_at": now, "last.error": reason},
         "$unset": {"claim": "", "lease_until": ""}}).modified_count


def forget_webhook(db, webhook_id: str) -> int:
    return db.notify_deliveries.delete_many({"webhook_id": webhook_id}).deleted_count


def next_due_at(db) -> datetime | None:
    doc = db.notify_deliveries.find_one({"state": {"$in": ["pending", "failed"]}}, {"next_attempt_at": 1},
                                        sort=[("next_attempt_at", ASCENDING)])
    return doc.get("next_attempt_at") if doc else None


def sweep_older_than(db, cutoff: datetime) -> int:
    """Finished records older than `cutoff` go (open ones stay until they end)."""
    return db.notify_deliveries.delete_many({"created_at": {"$lt": cutoff},
                                             "state": {"$in": ["delivered", "dead"]}}).deleted_count


def count_open(db) -> int:
    return db.notify_deliveries.count_documents({"state": {"$in": list(OPEN)}})
