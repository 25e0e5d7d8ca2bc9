"""Request and response models of /pairing/v1 and /devices/v1 (CONTRACT §4): validation and OpenAPI."""

from __future__ import annotations

from typing import Any, Literal

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


class SettingSpec(BaseModel):
    """One typed setting a NAS package declares (docs/device-protocol.md "Package Setting")."""

    key: str = Field(description="^[a-z][a-z0-9_]{0,63}$")
    type: Literal["boolean", "integer", "number", "string", "enum"]
    label: str | None = None
    description: str | None = None
    default: Any = None
    min: float | None = Field(None, description="integer and number: the smallest value allowed")
    max: float | None = Field(None, description="integer and number: the largest value allowed")
    max_length: int | None = Field(None, description="string: at most this many characters")
    choices: list[str] | None = Field(None, description="enum: the values allowed")


class PackageChange(BaseModel):
    """The owner's latest change to a package's settings."""

    id: str = Field(description="the id the device acknowledges (`package.configure.ack`)")
    state: Literal["pending", "applied", "failed"]
    settings: dict[str, Any] = Field(description="the settings asked for, with their new values")
    requested_at: str
    expires_at: str = Field(description="pending past this → failed with reason timeout")
    finished_at: str | None = None
    reason: str | None = Field(None, description="why it failed: timeout, broker_unavailable, or the device's reason")


class DevicePackage(BaseModel):
    """A package a NAS runs, as it last reported it, and the owner's latest change."""

    name: str
    version: str | None
    title: str | None
    description: str | None
    settings: list[SettingSpec]
    values: dict[str, Any] = Field(description="current values as the device reported or acknowledged them")
    reported_at: str | None
    change: PackageChange | None


class DevicePackagePage(BaseModel):
    """The packages a NAS reports (all of them: next_cursor is always null)."""

    items: list[DevicePackage]
    next_cursor: str | None


PACKAGE_SETTINGS_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "setting key → new value (settings not named keep their values)",
    "minProperties": 1}}}}
