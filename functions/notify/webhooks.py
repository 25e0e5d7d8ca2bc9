"""Owner of the `webhooks` collection: a user's endpoints, their secrets and their health.

`{_id, owner, url, events, description, state: enabled|disabled, disabled_reason?, disabled_at?, secret,
previous_secret?, previous_secret_until?, consecutive_failures, created_at, updated_at, last_attempt_at?,
last_status?, last_error?}`. Secrets stay here (they sign every delivery); the API shows them only when made.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, ReturnDocument

from runtime.ids import new_id
from runtime.mongo import register_indexes

MAX_PER_OWNER = 20


@register_indexes
def _indexes(db) -> None:
    db.webhooks.create_index([("owner", ASCENDING), ("_id", ASCENDING)])


def insert(db, owner: str, url: str, events: list[str], description: str, secret: str, now: datetime) -> dict:
    doc = {"_id": new_id(), "owner": owner, "url": url, "events": events, "description": description,
           "state": "enabled", "secret": secret, "consecutive_failures": 0, "created_at": now, "updated_at": now}
    db.webhooks.insert_one(doc)
    return doc


def count_owned(db, owner: str) -> int:
    return db.webhooks.count_documents({"owner": owner})


def get_owned(db, owner: str, webhook_id) -> dict | None:
    if not isinstance(webhook_id, str) or not webhook_id:
        return None
    return db.webhooks.find_one({"_id": webhook_id, "owner": owner})


def get(db, webhook_id: str) -> dict | None:
    return db.webhooks.find_one({"_id": webhook_id})


def list_owned(db, owner: str, after: str | None, limit: int) -> tuple[list[dict], bool]:
    query: dict = {"owner": owner}
    if after:
        query["_id"] = {"$gt": after}
    docs = list(db.webhooks.find(query).sort("_id", ASCENDING).limit(limit + 1))
    return docs[:limit], len(docs) > limit


def update_owned(db, owner: str, webhook_id: str, fields: dict, now: datetime) -> dict | None:
    return db.webhooks.find_one_and_update({"_id": webhook_id, "owner": owner},
                                           {"$set": {**fields, "updated_at": now}},
                                           return_document=ReturnDocument.AFTER)


def enable(db, owner: str, webhook_id: str, now: datetime) -> dict | None:
    """Back on, with a clean slate (the failures that disabled it are history)."""
    return db.webhooks.find_one_and_update(
        {"_id": webhook_id, "owner": owner},
        {"$set": {"state": "enabled", "consecutive_failures": 0, "updated_at": now},
         "$unset": {"disabled_reason": "", "disabled_at": ""}}, return_document=ReturnDocument.AFTER)


def delete_owned(db, owner: str, webhook_id: str) -> bool:
    return db.webhooks.delete_one({"_id": webhook_id, "owner": owner}).deleted_count > 0


def rotate(db, owner: str, webhook_id: str, secret: str, grace_until: datetime | None, now: datetime) -> dict | None:
    """New secret; the old one keeps signing alongside until `grace_until` (None: dropped at once)."""
    doc = get_owned(db, owner, webhook_id)
    if doc is None:
        return None
    fields = {"secret": secret, "updated_at": now}
    unset = {}
    if grace_until is not None:
        fields.update(previous_secret=doc["secret"], previous_secret_until=grace_until)
    else:
        unset = {"previous_secret": "", "previous_secret_until": ""}
    change = {"$set": fields, **({"$unset": unset} if unset else {})}
    return db.webhooks.find_one_and_update({"_id": webhook_id, "owner": owner, "secret": doc["secret"]}, change,
                                           return_document=ReturnDocument.AFTER)


def subscribed(db, owner: str, event_type: str) -> list[dict]:
    """The owner's enabled webhooks that asked for this event type (or for every one, `*`)."""
    return list(db.webhooks.find({"owner": owner, "state": "enabled", "events": {"$in": [event_type, "*"]}},
                                 {"_id": 1, "owner": 1}))


def record_success(db, webhook_id: str, status: int, now: datetime) -> None:
    db.webhooks.update_one({"_id": webhook_id},
                           {"$set": {"consecutive_failures": 0, "last_attempt_at": now, "last_status": status,
                                     "last_error": None}})


def record_failure(db, webhook_id: str, status: int | None, error: str, now: datetime) -> dict | None:
    """One more failed attempt in a row; the webhook after it (None when it is gone)."""
    return db.webhooks.find_one_and_update(
        {"_id": webhook_id},
        {"$inc": {"consecutive_failures": 1},
         "$set": {"last_attempt_at": now, "last_status": status, "last_error": error[:500]}},
        return_document=ReturnDocument.AFTER)


def disable(db, webhook_id: str, reason: str, now: datetime, session=None) -> dict | None:
    """Disabled, once: the record when this call did it, None when it already was (or is gone)."""
    return db.webhooks.find_one_and_update(
        {"_id": webhook_id, "state": "enabled"},
        {"$set": {"state": "disabled", "disabled_reason": reason, "disabled_at": now, "updated_at": now}},
        return_document=ReturnDocument.AFTER, session=session)
