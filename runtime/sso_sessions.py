"""The one owner of the `sso_sessions` collection: the portal's signed-in sessions (CONTRACT §2).

The SSO function creates and ends them; the gateway (cookie authentication) and the portal (its pages) only
ask whether one is live. They all sit on different layers, so the collection's queries live here, below them.
A session's `_id` is the SHA-256 hex of its cookie value: the cookie itself is never stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument

from runtime.ids import as_utc, utcnow
from runtime.mongo import register_indexes


@register_indexes
def _indexes(db) -> None:
    db.sso_sessions.create_index([("ended_at", ASCENDING), ("expires_at", ASCENDING)])
    db.sso_sessions.create_index([("user_id", ASCENDING), ("ended_at", ASCENDING)])


def session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def create(db, user_id: str, provider: str, lifetime: timedelta, now: datetime) -> tuple[str, dict]:
    """A new session; returns (cookie value, document)."""
    cookie = secrets.token_urlsafe(32)
    doc = {"_id": session_id(cookie), "user_id": user_id, "csrf": secrets.token_urlsafe(24), "clients": [],
           "provider": provider, "created_at": now, "expires_at": now + lifetime, "ended_at": None}
    db.sso_sessions.insert_one(doc)
    return cookie, doc


def find_live(db, sid: str | None, now: datetime | None = None, user_id: str | None = None) -> dict | None:
    """The session if it exists, has not ended and has not expired (and is `user_id`'s when given)."""
    if not sid:
        return None
    query = {"_id": sid} if user_id is None else {"_id": sid, "user_id": user_id}
    doc = db.sso_sessions.find_one(query)
    if not doc or doc.get("ended_at") or as_utc(doc["expires_at"]) <= (now or utcnow()):
        return None
    return doc


def live_for_user(db, user_id: str, now: datetime | None = None, limit: int = 500) -> list[dict]:
    """The user's sessions that have neither ended nor expired (every browser signed in), newest first."""
    query = {"user_id": user_id, "ended_at": None, "expires_at": {"$gt": now or utcnow()}}
    return list(db.sso_sessions.find(query).sort([("created_at", -1), ("_id", -1)]).limit(limit))


def add_client(db, sid: str, client_id: str) -> None:
    db.sso_sessions.update_one({"_id": sid}, {"$addToSet": {"clients": client_id}})


def end(db, sid: str, reason: str, now: datetime, session=None) -> dict | None:
    """End it once: the session as it is now ended, or None when it had ended already (or never existed)."""
    return db.sso_sessions.find_one_and_update(
        {"_id": sid, "ended_at": None}, {"$set": {"ended_at": now, "end_reason": reason}},
        session=session, return_document=ReturnDocument.AFTER)


def expired_ids(db, now: datetime, limit: int) -> list[str]:
    """Sessions whose lifetime is over but that nobody ended yet."""
    return [d["_id"] for d in db.sso_sessions.find({"ended_at": None, "expires_at": {"$lte": now}}, {"_id": 1})
            .limit(limit)]


def purge_ended(db, before: datetime) -> int:
    return db.sso_sessions.delete_many({"ended_at": {"$lte": before}}).deleted_count
