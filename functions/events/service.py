"""Reading the log for one user: parameter checks over runtime.events.list_events (no Flask here)."""

from __future__ import annotations

import re

from runtime import events
from runtime.errors import BadRequest

MAX_LIMIT = 500
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*){0,2}\.?$")


def _int(name: str, raw: str | None, default: int, minimum: int, maximum: int | None = None) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw!r}", code="invalid_parameter",
                         details={"parameter": name}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadRequest(f"{name} must be {bound}, got {value}", code="invalid_parameter",
                         details={"parameter": name})
    return value


def list_for(db, owner: str, *, after: str | None, type_prefix: str | None, limit: str | None):
    after_seq = _int("after", after, 0, 0)
    count = _int("limit", limit, 100, 1, MAX_LIMIT)
    if type_prefix and not _PREFIX_RE.match(type_prefix):
        raise BadRequest("type must be a dotted event type prefix such as files.node", code="invalid_parameter",
                         details={"parameter": "type"})
    return events.list_events(db, owner, after=after_seq, type_prefix=type_prefix or None, limit=count)
