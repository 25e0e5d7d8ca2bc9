"""The changes-feed cursor codec (CONTRACT §5): opaque to clients, base64 of the journal seq.

It lives in runtime so both the feed (mobile_api.sync) and push (a tickle carries the cursor) share one format
without importing each other.
"""

from __future__ import annotations

import base64
import binascii

from runtime.errors import BadRequest

_PREFIX = "s1:"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{int(seq)}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """0 for no cursor (everything); a 400 for anything this server did not hand out."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    digits = raw[len(_PREFIX):] if raw.startswith(_PREFIX) else ""
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18 or encode_cursor(int(digits)) != cursor:
        raise BadRequest("cursor is not one this server handed out", code="invalid_cursor")
    return int(digits)
