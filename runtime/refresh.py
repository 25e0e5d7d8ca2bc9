"""The one owner of refresh tokens (`sso_refresh_tokens`) and their families (`sso_refresh_families`).

A family is one sign-in of one client (a phone, or a sibling in an SSO session); every rotation adds a token
to it. The family document carries the `revoked` flag, and rotation writes it inside the same transaction
that marks the old token used and stores the new one, so a concurrent reuse (which revokes the family) and a
rotation conflict: either the rotation commits first and the revocation catches the new token, or the
revocation commits first and the rotation fails. It lives below the functions because pairing (unpairing a
phone) and the mobile API (binding a family to the phone it registers) revoke and bind families too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pymongo import ASCENDING

from runtime.mongo import register_indexes, transaction


@register_indexes
def _indexes(db) -> None:
    db.sso_refresh_tokens.create_index([("family", ASCENDING)])
    db.sso_refresh_tokens.create_index([("expires_at", ASCENDING)])
    db.sso_refresh_families.create_index([("user_id", ASCENDING)])
    db.sso_refresh_families.create_index([("device_id", ASCENDING)], sparse=True)
    db.sso_refresh_families.create_index([("expires_at", ASCENDING)])


class Refused(Exception):
    """The token cannot be rotated; `reused` when presenting it again revoked its family."""

    def __init__(self, message: str, reused: bool = False):
        super().__init__(message)
        self.reused = reused


def find(db, token_hash: str) -> dict | None:
    return db.sso_refresh_tokens.find_one({"_id": token_hash})


def family(db, family_id: str) -> dict | None:
    return db.sso_refresh_families.find_one({"_id": family_id})


def _token_doc(token_hash: str, family_id: str, user_id: str, client_id: str, sid: str | None, scope: str,
               now: datetime, expires: datetime) -> dict:
    return {"_id": token_hash, "family": family_id, "user_id": user_id, "client_id": client_id, "sid": sid,
            "scope": scope, "created_at": now, "expires_at": expires, "used_at": None, "revoked": False}


def start_family(db, family_id: str, token_hash: str, *, user_id: str, client_id: str, sid: str | None, scope: str,
                 now: datetime, expires: datetime) -> None:
    """A new sign-in: its family document and first token."""
    db.sso_refresh_families.update_one(
        {"_id": family_id},
        {"$setOnInsert": {"user_id": user_id, "client_id": client_id, "sid": sid, "created_at": now,
                          "revoked": False, "rotations": 0},
         "$max": {"expires_at": expires}}, upsert=True)
    db.sso_refresh_tokens.insert_one(_token_doc(token_hash, family_id, user_id, client_id, sid, scope, now, expires))


def rotate(mongo, db, old: dict, new_hash: str, now: datetime, expires: datetime,
           check: Callable[[dict], None] = lambda fam: None) -> None:
    """Use `old` up and store its successor, atomically; Refused when the family is revoked or `old` was
    already used (which revokes the family, the successor a concurrent rotation just stored included)."""

    def work(session):
        fam = db.sso_refresh_families.find_one({"_id": old["family"]}, session=session)
        if fam is None:  # a token from before families had documents
            fam = {"_id": old["family"], "user_id": old["user_id"], "client_id": old["client_id"],
                   "sid": old.get("sid"), "created_at": old.get("created_at") or now, "revoked": False,
                   "rotations": 0, "expires_at": expires}
            db.sso_refresh_families.insert_one(fam, session=session)
        if fam.get("revoked"):
            raise Refused("refresh token revoked")
        check(fam)
        claimed = db.sso_refresh_tokens.update_one({"_id": old["_id"], "used_at": None, "revoked": False},
                                                   {"$set": {"used_at": now}}, session=session)
        if claimed.modified_count != 1:
            raise Refused("refresh token already used; every token of its family is revoked", reused=True)
        db.sso_refresh_tokens.insert_one(_token_doc(new_hash, old["family"], old["user_id"], old["client_id"],
                                                    old.get("sid"), old.get("scope") or "", now, expires),
                                         session=session)
        bumped = db.sso_refresh_families.update_one(
            {"_id": old["family"], "revoked": False},
            {"$inc": {"rotations": 1}, "$set": {"last_used_at": now}, "$max": {"expires_at": expires}},
            session=session)
        if bumped.matched_count != 1:
            raise Refused("refresh token revoked")

    try:
        transaction(mongo, work)
    except Refused as exc:
        if exc.reused:
            revoke_family(db, old["family"], now, reason="reuse")
        raise


def revoke_family(db, family_id: str, now: datetime, reason: str = "revoked") -> None:
    """Flag first (a rotation racing us then fails), then every token of the family."""
    db.sso_refresh_families.update_one({"_id": family_id},
                                       {"$set": {"revoked": True, "revoked_at": now, "revoked_reason": reason}},
                                       upsert=True)
    db.sso_refresh_tokens.update_many({"family": family_id}, {"$set": {"revoked": True}})


def revoke_user(db, user_id: str, now: datetime, reason: str = "disabled") -> int:
    """Every family of this user (an admin disabled the account)."""
    ids = [f["_id"] for f in db.sso_refresh_families.find({"user_id": user_id, "revoked": False}, {"_id": 1})]
    ids += db.sso_refresh_tokens.distinct("family", {"user_id": user_id, "revoked": False})
    for family_id in set(ids):
        revoke_family(db, family_id, now, reason)
    return len(set(ids))


def live_families(db, user_id: str, now: datetime, limit: int = 500) -> list[dict]:
    """The user's families that can still refresh (not revoked, not expired), newest first: what the
    account's sessions page lists and lets the user end one by one."""
    return list(db.sso_refresh_families.find({"user_id": user_id, "revoked": False, "expires_at": {"$gt": now}})
                .sort([("created_at", -1), ("_id", -1)]).limit(limit))


def bind_device(db, user_id: str, family_id: str, device_id: str) -> bool:
    """The phone that registered with this family's tokens: deleting the device revokes the family."""
    return db.sso_refresh_families.update_one({"_id": family_id, "user_id": user_id},
                                              {"$set": {"device_id": device_id}}).modified_count == 1


def revoke_device(db, user_id: str, device_id: str, now: datetime) -> int:
    ids = [f["_id"] for f in db.sso_refresh_families.find({"user_id": user_id, "device_id": device_id}, {"_id": 1})]
    for family_id in ids:
        revoke_family(db, family_id, now, reason="device_deleted")
    return len(ids)


def purge_expired(db, before: datetime) -> int:
    removed = db.sso_refresh_tokens.delete_many({"expires_at": {"$lte": before}}).deleted_count
    return removed + db.sso_refresh_families.delete_many({"expires_at": {"$lte": before}}).deleted_count
