"""Request and response models of the versions, share and link routes of /files/v1 (issue 19)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from runtime.schemas import Body


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
