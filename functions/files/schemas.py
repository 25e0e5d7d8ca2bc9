"""Request and response models of /files/v1 (CONTRACT §3): the routes validate bodies with them and
/openapi.json documents them. Rules that need the tree or the settings (names, block sizes, the block count)
stay in the service; a body whose types are wrong gets the code the service would have used."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from runtime.schemas import REF_TEMPLATE, Body, ErrorDetail, Query, omittable

HASH_PATTERN = "^[0-9a-f]{64}$"
NAME = "NFC, 1-255 UTF-8 bytes, no '/' or NUL, not '.' or '..'; unique per folder (casefolded)"


class Node(BaseModel):
    """A file or folder."""

    id: str
    parent_id: str | None = Field(description="null for the root")
    name: str
    kind: Literal["file", "folder"]
    rev: int
    size: int
    content_hash: str | None = Field(description="hex SHA-256 of the concatenated 32-byte block digests")
    mtime: datetime | None
    trashed_at: datetime | None = Field(description="set while the node is in the trash")
    metadata: dict | None = Field(None, description="the user's JSON object (<= 4 KiB); only present when set")


class NodePage(BaseModel):
    """A page of nodes."""

    items: list[Node]
    next_cursor: str | None


class NewFolder(Body):
    error_codes = {"name": "invalid_name"}
    parent_id: str
    name: str = Field(description=NAME)


class NodeChange(Body):
    """Rename and/or move, from the rev the client saw; and/or set the node's metadata."""

    model_config = {"extra": "forbid"}
    error_codes = {"name": "invalid_name", "base_rev": "invalid_base_rev", "metadata": "invalid_metadata"}
    name: str | None = Field(None, description=NAME)
    parent_id: str = omittable(description="the folder to move into")
    metadata: dict | None = Field(None, description="a JSON object of at most 4 KiB (400 metadata_too_large) that "
                                                  "replaces the node's metadata; null removes it")
    base_rev: int | None = Field(None, description="the node's rev this change was made from; stale → 409 "
                                                   "stale_rev. Required with name or parent_id; optional when "
                                                   "only metadata changes")


class BlockRef(Body):
    hash: str = Field(pattern=HASH_PATTERN, description="lowercase hex SHA-256 of the block's bytes")
    size: int = Field(description="4194304 for every block but the last (1..4194304)")


class NewUpload(Body):
    """A file to upload, as its list of 4 MiB blocks; node_id + base_rev overwrite an existing file."""

    error_codes = {"parent_id": "invalid_request", "name": "invalid_name", "size": "invalid_size",
                   "mtime": "invalid_mtime", "blocks": "invalid_blocks", "blocks.*.hash": "invalid_hash",
                   "blocks.*.size": "invalid_block_size", "base_rev": "invalid_base_rev",
                   "commit": "invalid_commit", "url_window": "invalid_url_window"}
    parent_id: str | None = Field(None, description="the folder of a new file")
    name: str | None = Field(None, description=NAME)
    size: int = Field(ge=0, description="bytes; the blocks' sizes add up to it")
    mtime: str | int | float | None = Field(None, description="ISO 8601 or seconds since the epoch")
    blocks: list[BlockRef] = Field(description="in file order; at most PCLOUD_MAX_BLOCKS_PER_FILE (413 beyond)")
    node_id: str | None = Field(None, description="overwrite this file")
    base_rev: int | None = Field(None, description="with node_id: the rev the new content was made from")
    commit: Literal["if_complete"] | None = Field(
        None, description="if_complete: when no block is missing, commit in this same request (the answer then "
                          "carries committed=true and the node; a refused commit gives commit_error and the upload "
                          "stays pending)")
    url_window: int | None = Field(None, ge=1, le=1000,
                                   description="presign only the first N missing blocks; fetch the next ones with "
                                               "GET /files/v1/uploads/{upload_id}/urls?after=next_after")


class MissingBlock(BaseModel):
    hash: str = Field(pattern=HASH_PATTERN)
    url: str = Field(description="send the block's bytes here")
    method: str
    headers: dict[str, str]


_STORE = ("informational: the named store the PUTs of `missing` go to, where a block is acknowledged (the first "
          "store of the folder's policy that is up; null when nothing is to be sent). URLs stay opaque")
_FALLBACK = ("true when the folder's policy names stores and the first of them is down: the blocks are "
             "acknowledged on the next one (or the ingest store) and moved by the placement worker later")


class UploadStarted(BaseModel):
    """The upload, and the blocks the store still needs from this user."""

    upload_id: str
    expires_at: datetime
    missing: list[MissingBlock] = Field(description="presigned PUTs: every missing block, or the first url_window")
    missing_count: int = Field(0, description="how many distinct blocks are missing in all")
    next_after: str | None = Field(None, description="more URLs: GET …/urls?after=THIS; null when missing is all")
    store: str | None = Field(None, description=_STORE)
    store_fallback: bool = Field(False, description=_FALLBACK)
    committed: bool = Field(False, description="with commit=if_complete: the file was committed in this request")
    created: bool | None = Field(None, description="when committed: true for a new file, false for an overwrite")
    node: Node | None = Field(None, description="when committed: the file")
    commit_error: ErrorDetail | None = Field(
        None, description="when commit=if_complete found nothing missing but the commit was refused (name_taken, "
                          "stale_rev, …): the upload stays pending, POST …/commit after resolving it")


class UploadUrls(BaseModel):
    """The next window of presigned PUTs of a pending upload."""

    upload_id: str
    expires_at: datetime
    missing: list[MissingBlock]
    missing_count: int
    next_after: str | None = Field(description="the cursor of the next window; null after the last")
    store: str | None = Field(None, description=_STORE)
    store_fallback: bool = Field(False, description=_FALLBACK)


class UrlsQuery(Query):
    error_codes = {"after": "invalid_cursor", "limit": "invalid_limit"}
    after: str | None = Field(None, pattern=HASH_PATTERN, description="the last hash of the previous window")
    limit: int = Field(256, ge=1, le=1000, description="URLs per window")


MAX_BATCH_UPLOADS = 500


class UploadBatch(Body):
    """Many files negotiated (and, with commit=if_complete, committed) in one request."""

    # each item is checked on its own (a bad one answers its own error, the rest go on); the document shows
    # each item as a NewUpload
    error_codes = {"uploads": "invalid_uploads"}
    uploads: Annotated[list[Any], WithJsonSchema({
        "type": "array", "maxItems": MAX_BATCH_UPLOADS, "items": {"$ref": REF_TEMPLATE.format(model="NewUpload")}})]


class BatchResult(UploadStarted):
    """One file of a batch: its upload as POST /files/v1/uploads answers it, or its error."""

    status: int = Field(description="the status POST /files/v1/uploads (or its commit) would have answered")
    upload_id: str | None = None
    expires_at: datetime | None = None
    missing: list[MissingBlock] = []
    error: ErrorDetail | None = None


class CommitBatch(Body):
    """Many uploads committed in one request, each as POST /files/v1/uploads/{upload_id}/commit would."""

    error_codes = {"upload_ids": "invalid_upload_ids"}
    upload_ids: Annotated[list[Any], WithJsonSchema({"type": "array", "maxItems": MAX_BATCH_UPLOADS,
                                                     "items": {"type": "string"}})]


class CommitResult(BaseModel):
    upload_id: str | None
    status: int = Field(description="201 new file, 200 overwrite, else the error's status")
    node: Node | None = None
    error: ErrorDetail | None = None


class CommitResults(BaseModel):
    results: list[CommitResult] = Field(description="in the order of upload_ids")


class BatchResults(BaseModel):
    results: list[BatchResult] = Field(description="in the order of uploads")


class PageQuery(Query):
    cursor: str | None = Field(None, description="opaque; from a previous page")
    limit: int | None = Field(None, ge=1, le=1000)


class PathQuery(Query):
    path: str = Field(description="absolute, names from the root: /Camera/IMG_1.jpg (case as names are unique)")


class TrashQuery(Query):
    base_rev: int | None = Field(None, ge=0, description="refuse (409 stale_rev) when the node moved on")


class PreviewQuery(Query):
    size: Literal[256, 1024] = Field(256, description="longest side in pixels")
