"""Owner of the `notify_rules` collection: which event types a user wants on their phones.

`{_id: owner, push: [event types], updated_at}`; no document = the defaults (service.DEFAULT_PUSH). Webhooks keep
their own `events` list (webhooks.py): a rule here is only about the push channel.
"""

from __future__ import annotations

from datetime import datetime


def push_types(db, owner: str) -> list[str] | None:
    """The user's chosen push types, None when they never chose (then the defaults apply)."""
    doc = db.notify_rules.find_one({"_id": owner}, {"push": 1})
    return None if doc is None else list(doc.get("push") or [])


def set_push_types(db, owner: str, types: list[str], now: datetime) -> None:
    db.notify_rules.update_one({"_id": owner}, {"$set": {"push": types, "updated_at": now}}, upsert=True)
