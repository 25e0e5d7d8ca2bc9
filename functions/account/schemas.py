"""Request and response models of /account/v1."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runtime.schemas import Body


class LinkedIdentity(BaseModel):
    """A sign-in provider account linked to this PCloud account (linked by the same verified email)."""

    provider: str = Field(examples=["google"])
    label: str = Field(examples=["Google"])


class Profile(BaseModel):
    id: str
    email: str
    name: str
    role: Literal["admin", "member"]
    created_at: str | None = Field(None, description="ISO 8601 UTC")
    identities: list[LinkedIdentity]


class ProfilePatch(Body):
    error_codes = {"name": "invalid_name"}
    name: str = Field(min_length=1, max_length=100, description="display name; surrounding spaces are dropped")


class Session(BaseModel):
    """One place the account is signed in: a browser (an SSO session, with the sibling apps signed in through
    it) or a refresh-token family (a phone's sign-in, bound to its registered device when it registered)."""

    id: str
    kind: Literal["browser", "phone", "app"]
    client_id: str = Field(description="pcloud for the portal and the phone app, else the sibling's client_id")
    provider: str | None = Field(None, description="how a browser signed in (google, facebook)")
    apps: list[str] = Field(default_factory=list, description="sibling apps signed in through this browser session")
    device_id: str | None = Field(None, description="the phone registered with this sign-in")
    device_name: str | None = None
    created_at: str | None = None
    last_used_at: str | None = None
    expires_at: str | None = None
    current: bool = Field(description="the session this request came with")


class SessionPage(BaseModel):
    items: list[Session]
    next_cursor: str | None


class SignedOutEverywhere(BaseModel):
    sessions_ended: int = Field(description="browser sessions ended (siblings get back-channel logout)")
    families_revoked: int = Field(description="refresh-token families revoked (phones must sign in again)")
