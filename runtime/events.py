"""The outbox: work that must follow a write is recorded in the write's own transaction.

A relay (push/relay.py) carries pending events to rq. Nothing is lost when a process dies between the
write and the work, and nothing is published for a write that rolled back.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime.ids import new_id, utcnow
from runtime.mongo import register_indexes


@register_indexes
def _indexes(db) -> None:
    db.outbox.create_index([("status", ASCENDING), ("created_at", ASCENDING)])


def emit(db, type: str, user_id: str | None, payload: dict, session=None) -> str:
    event_id = new_id()
    try:
        db.outbox.insert_one(
            {"_id": event_id, "type": type, "user_id": user_id, "payload": payload, "created_at": utcnow(),
             "status": "pending", "attempts": 0},
            session=session,
        )
    except DuplicateKeyError:
        if session is not None:
            raise
        # A retried write whose first attempt had landed: the event is recorded once, which is what we want.
    return event_id


def claim_pending(db, limit: int = 100, stale_after: timedelta = timedelta(minutes=5)) -> list[dict]:
    """Claim up to `limit` events; events claimed long ago by a relay that died are claimed again."""
    now = utcnow()
    claimed = []
    query = {"$or": [{"status": "pending"}, {"status": "claimed", "claimed_at": {"$lt": now - stale_after}}]}
    for _ in range(limit):
        doc = db.outbox.find_one_and_update(
            query, {"$set": {"status": "claimed", "claimed_at": now}, "$inc": {"attempts": 1}},
            sort=[("created_at", ASCENDING)], return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            break
        claimed.append(doc)
    return claimed


def mark_done(db, event_ids: list[str]) -> None:
    if event_ids:
        db.outbox.update_many({"_id": {"$in": event_ids}}, {"$set": {"status": "done", "done_at": utcnow()}})


def release(db, event_ids: list[str]) -> None:
    """Hand events back (the relay could not enqueue them)."""
    if event_ids:
        db.outbox.update_many({"_id": {"$in": event_ids}}, {"$set": {"status": "pending"}})
