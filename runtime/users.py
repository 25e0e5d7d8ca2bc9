"""The one place a `users` document is built and looked up by identity (sign-in, dev tokens, display names).

The journal counter fields (`seq`, `journal_floor`) belong to the files journal (functions/files/tree.py
`next_seq`); everything that creates a user goes through `new_user` so every account starts with them.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime.ids import new_id, utcnow
from runtime.mongo import register_indexes


@register_indexes
def _indexes(db) -> None:
    db.users.create_index([("email", ASCENDING)], unique=True)
    db.users.create_index([("identities.provider", ASCENDING), ("identities.subject", ASCENDING)])


def new_user(email: str, name: str | None, identities: list[dict], now: datetime | None = None) -> dict:
    """The document of a new account (not stored)."""
    return {"_id": new_id(), "email": email, "name": name or email, "identities": list(identities), "seq": 0,
            "journal_floor": 0, "created_at": now or utcnow()}


def get(db, user_id: str) -> dict | None:
    return db.users.find_one({"_id": user_id})


def by_identity(db, provider: str, subject: str) -> dict | None:
    return db.users.find_one({"identities": {"$elemMatch": {"provider": provider, "subject": subject}}})


def link_identity(db, email: str, identity: dict) -> dict | None:
    """Add a provider identity to the account with this email; the account, or None when there is none."""
    return db.users.find_one_and_update({"email": email}, {"$addToSet": {"identities": identity}},
                                        return_document=ReturnDocument.AFTER)


def create(db, email: str, name: str | None, identities: list[dict], now: datetime | None = None) -> dict | None:
    """Insert a new account; None when one with this email appeared meanwhile (the caller links to it)."""
    user = new_user(email, name, identities, now)
    try:
        db.users.insert_one(user)
    except DuplicateKeyError:
        return None
    return user


def ensure_by_email(db, email: str, name: str, now: datetime | None = None) -> dict:
    """The account with this email, created without identities when new (local development tokens)."""
    for _ in range(3):
        user = db.users.find_one({"email": email})
        if user is not None:
            return user
        user = create(db, email, name, [], now)
        if user is not None:
            return user
    raise RuntimeError(f"could not create or find the account {email}")


def display_name(db, user_id: str) -> str:
    return (db.users.find_one({"_id": user_id}, {"name": 1}) or {}).get("name") or ""


def profile(db, user_id: str) -> dict:
    """{name, email} of an account ({} when gone)."""
    return db.users.find_one({"_id": user_id}, {"name": 1, "email": 1}) or {}
