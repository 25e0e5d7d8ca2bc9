"""Request and response models of /pairing/v1 and /devices/v1 (CONTRACT §4): validation and OpenAPI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runtime.schemas import Body, Query

Status = Literal["start", "waiting", "done", "failed", "expired"]


class StartPairing(Body):
    """Which NAS to pair: the serial it announces in its `hello`."""

    error_codes = {"serial": "invalid_serial"}
    serial: str = Field(description="1-64 letters, digits, '-' or '_', starting with a letter or digit",
                        examples=["NAS-0001"])


class PairingStarted(BaseModel):
    """Started: the NAS blinks and waits for its button."""

    session_id: str
    serial: str
    status: Literal["start"]
    expires_at: str = Field(description="ISO 8601 UTC; the session expires unless the button is pressed")


class PairingSession(BaseModel):
    """A pairing session."""

    session_id: str
    serial: str
    status: Status
    device_id: str | None = Field(None, description="set when done")
    reason: str | None = Field(None, description="why it failed, e.g. device_offline")


class WaitQuery(Query):
    wait: float | None = Field(None, ge=0, le=25, description="long-poll up to this many seconds (at most 25)")
    since: Status | None = Field(None, description="answer as soon as the status differs from this")


class Device(BaseModel):
    """A paired NAS or a registered phone."""

    device_id: str
    kind: Literal["nas", "phone"]
    name: str | None
    serial: str | None = None
    online: bool
    last_seen: str | None = Field(None, description="ISO 8601 UTC")
    paired_at: str | None = Field(None, description="ISO 8601 UTC")


class DevicePage(BaseModel):
    """A page of devices."""

    items: list[Device]
    next_cursor: str | None


class PageQuery(Query):
    cursor: str | None = Field(None, description="opaque; from a previous page")
    limit: int | None = Field(None, ge=1, le=500)
