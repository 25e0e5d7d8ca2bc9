"""The phone registry: devices (kind=phone) and their FCM registration tokens, and delivery records.

Plain functions over the database (no Flask); mobile_api/device_routes.py is the HTTP side. The `devices`
collection itself is runtime/devices.py's (pairing writes NAS records there too); this module keeps the rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import DESCENDING

from push.service import message_view
from runtime import devices
from runtime.errors import BadRequest, NotFound
from runtime.ids import utcnow

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
    return devices.insert_phone(db, owner, name.strip(), platform, now or utcnow(), push_token=token)


def set_push_token(db, owner: str, device_id: str, push_token, now: datetime | None = None) -> None:
    """FCM rotated the token (or the app refreshed it): replace it and restart its 270-day clock."""
    token = _check_token(push_token)
    if not devices.owned_phone(db, owner, device_id):
        raise NotFound("no such phone", code="not_found")
    devices.set_push_token(db, owner, device_id, token, now or utcnow())


def prune_token(db, token: str) -> int:
    """FCM said UNREGISTERED / invalid: forget exactly this token (the device record stays)."""
    return devices.remove_token(db, token, utcnow())


def sweep_stale_tokens(db, now: datetime | None = None, days: int = STALE_TOKEN_DAYS) -> int:
    """Forget tokens not refreshed for `days`: FCM has expired them, sending would only fail."""
    return devices.remove_tokens_older_than(db, (now or utcnow()) - timedelta(days=days), utcnow())


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
