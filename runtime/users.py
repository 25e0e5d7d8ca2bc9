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


def set_name(db, user_id: str, name: str) -> dict | None:
    """The account's display name (what the portal, push texts and pairing requests show); None when gone."""
    return db.users.find_one_and_update({"_id": user_id}, {"$set": {"name": name}},
                                        return_document=ReturnDocument.AFTER)


def profile(db, user_id: str) -> dict:
    """{name, email} of an account ({} when gone)."""
    return db.users.find_one({"_id": user_id}, {"name": 1, "email": 1}) or {}


# --- roles and standing (CONTRACT §2): admin|member, disabled ------------------------------------------------
ROLES = ("admin", "member")


@register_indexes
def _role_indexes(db) -> None:
    db.users.create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
    db.users.create_index([("role", ASCENDING)])


def standing(db, user_id: str) -> dict | None:
    """{role, disabled} of an account, what the gateway re-reads every few seconds per caller."""
    return db.users.find_one({"_id": user_id}, {"role": 1, "disabled": 1})


def first_user_id(db) -> str | None:
    """The account created first (ties broken by id, so every process agrees)."""
    doc = next(iter(db.users.find({}, {"_id": 1}).sort([("created_at", ASCENDING), ("_id", ASCENDING)]).limit(1)),
               None)
    return doc["_id"] if doc else None


def set_role(db, user_id: str, role: str, only_if_unset: bool = False, session=None) -> None:
    query: dict = {"_id": user_id}
    if only_if_unset:
        query["role"] = {"$exists": False}
    db.users.update_one(query, {"$set": {"role": role}}, session=session)


def set_disabled(db, user_id: str, disabled: bool, now: datetime, session=None) -> None:
    db.users.update_one({"_id": user_id}, {"$set": {"disabled": disabled, "disabled_at": now if disabled else None}},
                        session=session)


def get_for_update(db, user_id: str, session) -> dict | None:
    return db.users.find_one({"_id": user_id}, session=session)


def other_active_admins(db, user_id: str, session=None) -> int:
    return db.users.count_documents({"_id": {"$ne": user_id}, "role": "admin", "disabled": {"$ne": True}},
                                    session=session)


def guard_admins(db, session) -> None:
    """Every transaction that may remove an admin writes this one document, so two of them (two admins
    demoting each other at once) conflict instead of both seeing the other still there."""
    db.user_admin_guard.update_one({"_id": "admins"}, {"$inc": {"changes": 1}}, upsert=True, session=session)


def page(db, after: str | None, limit: int) -> tuple[list[dict], bool]:
    """Accounts by id after `after`; (page, more)."""
    query = {"_id": {"$gt": after}} if after else {}
    docs = list(db.users.find(query, {"email": 1, "name": 1, "role": 1, "disabled": 1, "created_at": 1})
                .sort("_id", ASCENDING).limit(limit + 1))
    return docs[:limit], len(docs) > limit


def admin_ids(db, limit: int = 100) -> list[str]:
    """Ids of the enabled admins: who hears about the box itself (its storage filling up)."""
    return [d["_id"] for d in db.users.find({"role": "admin", "disabled": {"$ne": True}}, {"_id": 1}).limit(limit)]


def journal_positions(db, user_ids) -> dict[str, int]:
    """user id → the newest seq of their own journal (what a sync tickle for them carries)."""
    user_ids = [u for u in user_ids if isinstance(u, str)]
    if not user_ids:
        return {}
    return {u["_id"]: int(u.get("seq") or 0) for u in db.users.find({"_id": {"$in": user_ids}}, {"seq": 1})}
