"""Webhook signatures: HMAC-SHA256 over `"<t>.<body>"` with the webhook's secret, sent as
`PCloud-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]` (the shape Stripe uses).

Why timestamped: a receiver that checks `t` against its clock (default tolerance 5 minutes) refuses a captured
delivery replayed later. Why several `v1`: while a rotated secret's grace period runs, each delivery is signed with
the new and the previous secret, so a receiver can switch secrets without dropping a delivery.
How a receiver verifies is `verify` below (docs/webhooks.md has the same in a few lines for other languages).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "PCloud-Signature"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with the whole secret string (prefix included)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def header_value(secrets_: list[str], body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time() if timestamp is None else timestamp)
    return ",".join([f"t={t}", *(f"{SCHEME}={signature(s, t, body)}" for s in secrets_)])


def parse(header: str) -> tuple[int | None, list[str]]:
    timestamp, sigs = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            sigs.append(value)
    return timestamp, sigs


def verify(header: str, body: bytes, secret: str, tolerance: int = DEFAULT_TOLERANCE_SECONDS,
           now: float | None = None) -> bool:
    """What a receiver does: the raw body (before any JSON parsing), the header, its copy of the secret."""
    timestamp, sigs = parse(header)
    if timestamp is None or not sigs:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)
