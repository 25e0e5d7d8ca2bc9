"""The phone registry: devices (kind=phone) and their FCM registration tokens, and delivery records.

Plain functions over the database (no Flask); mobile_api/device_routes.py is the HTTP side.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import DESCENDING

from push.service import message_view
from runtime.errors import BadRequest, NotFound
from runtime.ids import new_id, utcnow

PLATFORMS = ("android", "ios")
TOKEN_MAX_LEN = 4096
NAME_MAX_BYTES = 255
STALE_TOKEN_DAYS = 270  # FCM considers tokens inactive after 270 days


def _check_token(token) -> str:
    if not isinstance(token, str) or not token.strip() or len(token) > TOKEN_MAX_LEN:
        raise BadRequest(f"push_token must be a non-empty string of at most {TOKEN_MAX_LEN} characters",
                         code="invalid_push_token")
    return token.strip()


def register_phone(db, owner: str, name, platform, push_token=None, now: datetime | None = None) -> str:
    """A phone installs the app and signs in: remember it; its token now belongs to it alone."""
    if not isinstance(name, str) or not name.strip() or len(name.strip().encode()) > NAME_MAX_BYTES:
        raise BadRequest(f"name must be a non-empty string of at most {NAME_MAX_BYTES} bytes", code="invalid_name")
    if platform not in PLATFORMS:
        raise BadRequest(f"platform must be one of {', '.join(PLATFORMS)}", code="invalid_platform")
    token = _check_token(push_token) if push_token is not None else None
    now = now or utcnow()
    device_id = new_id()
    doc = {"_id": device_id, "kind": "phone", "owner": owner, "name": name.strip(), "platform": platform,
           "online": False, "last_seen": now, "paired_at": now, "created_at": now}
    if token:
        _release_token(db, token, keep=device_id)
        doc.update(push_token=token, token_updated_at=now)
    db.devices.insert_one(doc)
    return device_id


def set_push_token(db, owner: str, device_id: str, push_token, now: datetime | None = None) -> None:
    """FCM rotated the token (or the app refreshed it): replace it and restart its 270-day clock."""
    token = _check_token(push_token)
    now = now or utcnow()
    found = db.devices.find_one({"_id": device_id, "owner": owner, "kind": "phone"}, {"_id": 1})
    if found is None:
        raise NotFound("no such phone", code="not_found")
    _release_token(db, token, keep=device_id)
    db.devices.update_one({"_id": device_id, "owner": owner},
                          {"$set": {"push_token": token, "token_updated_at": now, "last_seen": now}})


def _release_token(db, token: str, keep: str) -> None:
    """A token addresses one app install: a reinstall or another account on the phone takes it over."""
    db.devices.update_many({"push_token": token, "_id": {"$ne": keep}},
                           {"$unset": {"push_token": "", "token_updated_at": ""}})


def prune_token(db, token: str) -> int:
    """FCM said UNREGISTERED / invalid: forget exactly this token (the device record stays)."""
    return db.devices.update_many({"push_token": token},
                                  {"$unset": {"push_token": "", "token_updated_at": ""},
                                   "$set": {"token_removed_at": utcnow()}}).modified_count


def sweep_stale_tokens(db, now: datetime | None = None, days: int = STALE_TOKEN_DAYS) -> int:
    """Forget tokens not refreshed for `days`: FCM has expired them, sending would only fail."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    query = {"kind": "phone", "push_token": {"$exists": True}, "token_updated_at": {"$lt": cutoff}}
    return db.devices.update_many(query,
                                  {"$unset": {"push_token": "", "token_updated_at": ""},
                                   "$set": {"token_removed_at": utcnow()}}).modified_count


def list_deliveries(db, owner: str, cursor: str | None, limit: int, device_id: str | None = None) -> dict:
    """Newest first; the cursor is the last item's (created_at, id) so paging is stable while new ones arrive."""
    query: dict = {"owner": owner}
    if device_id:
        query["device_id"] = device_id
    if cursor:
        try:
            stamp, _, last_id = cursor.partition("~")
            when = datetime.fromtimestamp(int(stamp) / 1_000_000, tz=utcnow().tzinfo)
        except ValueError:
            raise BadRequest("cursor is not one this endpoint handed out", code="invalid_cursor") from None
        query["$or"] = [{"created_at": {"$lt": when}}, {"created_at": when, "_id": {"$lt": last_id}}]
    docs = list(db.push_deliveries.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
    more = len(docs) > limit
    docs = docs[:limit]
    next_cursor = None
    if more and docs:
        last = docs[-1]
        micros = int(round(last["created_at"].timestamp() * 1_000_000))
        next_cursor = f"{micros}~{last['_id']}"
    return {"items": [message_view(d) for d in docs], "next_cursor": next_cursor}
