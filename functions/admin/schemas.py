"""Request and response models of /admin/v1 (CONTRACT §2 roles and groups)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runtime.schemas import Body, Query, omittable


class UserPatch(Body):
    """What an admin may change about an account; absent fields stay as they are."""

    error_codes = {"role": "invalid_role", "disabled": "invalid_request"}
    role: Literal["admin", "member"] = omittable(description="admin or member")
    disabled: bool = omittable(description="true: sign-ins refused, refresh tokens revoked, access tokens "
                                           "refused within one access-token lifetime")


class User(BaseModel):
    """An account as admins see it."""

    id: str
    email: str
    name: str | None
    role: Literal["admin", "member"]
    disabled: bool
    created_at: str | None = Field(None, description="ISO 8601 UTC")
    groups: list[str] = Field(description="ids of the groups the user belongs to")


class UserPage(BaseModel):
    items: list[User]
    next_cursor: str | None


class NewGroup(Body):
    """A group (a household: "family") and, optionally, its first members."""

    error_codes = {"name": "invalid_name", "members": "invalid_members"}
    name: str = Field(min_length=1, max_length=100, examples=["family"])
    members: list[str] = Field(default_factory=list, max_length=1000, description="user ids")


class NewMember(Body):
    error_codes = {"user_id": "invalid_user_id"}
    user_id: str = Field(min_length=1, max_length=64)


class Group(BaseModel):
    id: str
    name: str
    members: list[str] = Field(description="user ids")
    created_at: str | None = Field(None, description="ISO 8601 UTC")


class GroupPage(BaseModel):
    items: list[Group]
    next_cursor: str | None


class PageQuery(Query):
    cursor: str | None = Field(None, max_length=64)
    limit: int | None = Field(None, ge=1, le=500)
