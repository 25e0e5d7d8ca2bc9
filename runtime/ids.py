"""Ids and clocks: one way to make them, so every collection agrees."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def new_id() -> str:
    """24 lowercase hex characters: unguessable, URL-safe, sortable enough for logs."""
    return secrets.token_hex(12)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """MongoDB hands back naive datetimes unless tz_aware; normalise so comparisons never fail."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None
