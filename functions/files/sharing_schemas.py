"""Request and response models of the versions, share and link routes of /files/v1 (issue 19)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from functions.files.schemas import Node
from runtime.schemas import Body, Query


class Version(BaseModel):
    """One content of a file: the current one, or a kept previous one."""

    rev: int = Field(description="the file's rev while it had this content; restore names it")
    name: str | None
    size: int
    content_hash: str | None
    mtime: datetime | None
    kept_at: datetime | None = Field(description="when it was replaced; null for the current content")
    current: bool


class VersionPage(BaseModel):
    """The current content first, then kept versions newest first (PCLOUD_VERSIONS_KEEP, PCLOUD_VERSIONS_DAYS)."""

    items: list[Version]
    next_cursor: str | None


class VersionRestore(Body):
    error_codes = {"base_rev": "invalid_base_rev"}
    base_rev: int | None = Field(None, description="refuse (409 stale_rev) when the file moved on since")


class NewLink(Body):
    """A read-only public link to this node (a file, or a folder and everything below it)."""

    model_config = {"extra": "forbid"}
    error_codes = {"expires_at": "invalid_expiry", "expires_in": "invalid_expiry", "password": "invalid_password"}
    expires_at: str | None = Field(None, description="ISO 8601 time; at most 365 days ahead")
    expires_in: int | None = Field(None, description="seconds from now (instead of expires_at)")
    password: str | None = Field(None, description="1-1024 characters; visitors must give it (scrypt-hashed)")


class Link(BaseModel):
    """A share link, as its owner sees it."""

    id: str
    token: str = Field(description="the secret part of the URL")
    url: str = Field(description="the public download page: PCLOUD_PUBLIC_URL/s/{token}")
    node_id: str
    kind: str
    state: str = Field(description="active | expired | revoked")
    created_at: datetime
    expires_at: datetime | None
    password_required: bool
    downloads: int = Field(description="downloads through the link so far")
    last_download_at: datetime | None
    revoked_at: datetime | None


class LinkPage(BaseModel):
    items: list[Link]
    next_cursor: str | None


class LinksQuery(Query):
    node_id: str | None = Field(None, description="only the links to this node")
    cursor: str | None = None
    limit: int | None = Field(None, ge=1, le=1000)


class PublicNode(BaseModel):
    """A node as a link shows it: nothing about its owner, no parent above the link's node."""

    id: str
    name: str
    kind: str
    size: int
    content_hash: str | None
    mtime: datetime | None
    parent_id: str | None


class PublicLink(BaseModel):
    """What a link shares."""

    node: PublicNode
    expires_at: datetime | None
    password_required: bool


class PublicPage(BaseModel):
    items: list[PublicNode]
    next_cursor: str | None


class PublicNodeQuery(Query):
    node: str | None = Field(None, description="a node id inside the link (default: the link's own node)")
    path: str | None = Field(None, description="or a path relative to the link's folder: Trip/IMG_1.jpg")
    access: str | None = Field(None, description="the access grant of a password link (or X-PCloud-Link-Access)")


class PublicChildrenQuery(PublicNodeQuery):
    cursor: str | None = None
    limit: int | None = Field(None, ge=1, le=1000)


class Unlock(Body):
    error_codes = {"password": "wrong_password"}
    password: str = Field(description="the link's password")


class Unlocked(BaseModel):
    """Send `access` as the X-PCloud-Link-Access header (or `access=` in the query) for an hour."""

    access: str
    expires_in: int


class NewShare(Body):
    """Share this folder with one user (by id or email) or one group; sharing again changes the role."""

    model_config = {"extra": "forbid"}
    error_codes = {"role": "invalid_role"}
    user_id: str | None = None
    email: str | None = None
    group_id: str | None = None
    role: Literal["read", "write"] = Field("read", description="write: the sharee may add, change and trash below it")


class Share(BaseModel):
    """A folder shared with a user or a group."""

    id: str
    folder_id: str
    owner_id: str
    grantee_type: Literal["user", "group"]
    grantee_id: str
    role: Literal["read", "write"]
    created_at: datetime


class SharePage(BaseModel):
    items: list[Share]
    next_cursor: str | None


class ShareMount(BaseModel):
    share_id: str
    owner_id: str
    role: Literal["read", "write"]


class MountedFolder(Node):
    """A shared folder as its sharee sees it: parent_id is the sharee's root."""

    shared: ShareMount


class SharedFolder(BaseModel):
    """A folder someone shared with the caller: the share and the folder as the caller sees it (at their root)."""

    share: Share
    folder: MountedFolder


class SharedPage(BaseModel):
    items: list[SharedFolder]
    next_cursor: str | None
