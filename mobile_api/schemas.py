"""Request and response models of /mobile/v1 (CONTRACT §5, §6): the routes and the ops referee validate with
them and /openapi.json documents them (the Flutter team generates its Dart client from it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel, TypeAdapter, WithJsonSchema

from runtime.schemas import REF_TEMPLATE, Body, Query

MAX_OPS = 1000
OP_TYPES = ("create_folder", "rename", "move", "delete", "commit_upload")
CHANGES_DEFAULT, CHANGES_MAX = 500, 2000

_OP_ID = Field(min_length=1, max_length=128, description="client-chosen id; a repeated op_id returns the first result")
_REV = Field(ge=0, description="the node's rev this device last saw")
_NAME = Field(description="1-255 UTF-8 bytes, no '/' or NUL, not '.' or '..'")


# --- sign-in exchange ------------------------------------------------------------------------------------------
class GoogleExchange(Body):
    id_token: str = Field(min_length=1, description="the Google ID token the phone's sign-in SDK returned")


class FacebookExchange(Body):
    access_token: str = Field(min_length=1, description="the Facebook user access token from the phone's SDK")


class TokenUser(BaseModel):
    id: str
    email: str
    name: str | None


class MobileTokens(BaseModel):
    """PCloud tokens; the refresh token rotates at POST /auth/token with client_id pcloud."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"
    user: TokenUser


# --- phones and push ---------------------------------------------------------------------------------------------
class NewPhone(Body):
    error_codes = {"name": "invalid_name", "platform": "invalid_platform", "push_token": "invalid_push_token"}
    name: str = Field(description="shown to the user; names conflicted copies (1-255 bytes)")
    platform: Literal["android", "ios"]
    push_token: str | None = Field(None, description="the FCM registration token")


class PhoneRegistered(BaseModel):
    """Registered."""

    device_id: str


class PushToken(Body):
    error_codes = {"push_token": "invalid_push_token"}
    push_token: str = Field(description="the new FCM registration token (at most 4096 characters)")


class Delivery(BaseModel):
    """One push message to one phone."""

    model_config = {"extra": "allow"}


class DeliveryPage(BaseModel):
    """Push deliveries of the last days, newest first."""

    items: list[Delivery]
    next_cursor: str | None


class NotificationsQuery(Query):
    cursor: str | None = None
    limit: int | None = Field(None, ge=1, le=500)
    device_id: str | None = Field(None, description="only this phone's deliveries")


# --- changes feed ------------------------------------------------------------------------------------------------
class MobileNode(BaseModel):
    id: str = Field(pattern="^[0-9a-f]{24}$")
    parent_id: str | None = Field(description="null for the root")
    name: str
    kind: Literal["file", "folder"]
    rev: int
    size: int
    content_hash: str | None = Field(description="hex SHA-256 of the block digests")
    mtime: datetime | None
    trashed_at: datetime | None = Field(description="set when the node is in the trash (delete it locally)")
    purged: bool | None = Field(None, description="present and true when the node is gone for good")


class Changes(BaseModel):
    """One page of changes."""

    changes: list[MobileNode]
    cursor: str
    has_more: bool


class ChangesQuery(Query):
    cursor: str | None = Field(None, description="opaque; from a previous response")
    limit: int = Field(CHANGES_DEFAULT, ge=1, le=CHANGES_MAX)


# --- offline ops -------------------------------------------------------------------------------------------------
class MobileOpCreateFolder(Body):
    """make a folder"""

    op_id: str = _OP_ID
    type: Literal["create_folder"]
    parent_id: str
    name: str = _NAME


class MobileOpRename(Body):
    """rename a node"""

    op_id: str = _OP_ID
    type: Literal["rename"]
    node_id: str
    name: str = _NAME
    base_rev: int = _REV


class MobileOpMove(Body):
    """move a node into another folder"""

    op_id: str = _OP_ID
    type: Literal["move"]
    node_id: str
    parent_id: str
    base_rev: int = _REV


class MobileOpDelete(Body):
    """move a node to the trash"""

    op_id: str = _OP_ID
    type: Literal["delete"]
    node_id: str
    base_rev: int = _REV


class MobileOpCommitUpload(Body):
    """commit an upload negotiated with POST /files/v1/uploads (node_id + base_rev there overwrite)"""

    op_id: str = _OP_ID
    type: Literal["commit_upload"]
    upload_id: str


class MobileOp(RootModel):
    """One offline operation; `type` says which."""

    root: Annotated[MobileOpCreateFolder | MobileOpRename | MobileOpMove | MobileOpDelete | MobileOpCommitUpload,
                    Field(discriminator="type")]


OP_ADAPTER = TypeAdapter(MobileOp)


class OpsBatch(Body):
    """A batch of offline operations from one registered device."""

    # ops are checked one by one (a malformed op is `rejected`, the batch goes on), so here the list is only a
    # list; the document shows each item as a MobileOp, the model the referee checks each op with
    error_codes = {"device_id": "invalid_device", "ops": "invalid_ops"}
    device_id: str = Field(description="from POST /mobile/v1/devices")
    ops: Annotated[list[Any], WithJsonSchema({
        "type": "array", "maxItems": MAX_OPS, "items": {"$ref": REF_TEMPLATE.format(model="MobileOp")}})]


class MobileConflictRef(BaseModel):
    id: str
    type: Literal["delete_modified", "modify_deleted", "modify_modified", "edit_edit", "name_taken", "cycle"]
    resolution: Literal["kept_server", "restored", "conflicted_copy", "merged"]


class OpError(BaseModel):
    code: str = Field(description="e.g. not_found, name_taken, invalid_op, invalid_name, not_a_folder; in a "
                                  "shared folder also read_only_share, share_root, cross_owner_move, share_trashed")
    message: str
    details: dict[str, Any] = {}


class MobileOpResult(BaseModel):
    op_id: str | None
    status: Literal["applied", "conflict", "rejected"]
    node: MobileNode | None = Field(None, description="the resulting node (for edit_edit: the conflicted copy)")
    conflict: MobileConflictRef | None = None
    error: OpError | None = None


class OpsResults(BaseModel):
    """One result per op, in order."""

    results: list[MobileOpResult]
    cursor: str = Field(description="feed position covering this batch")


class MobileConflict(BaseModel):
    id: str
    type: str
    resolution: str
    node_id: str | None
    device_id: str | None
    op: dict[str, Any] | None = Field(None, description="the op as the device sent it")
    created_at: datetime
    owner_id: str | None = Field(None, description="whose tree it happened in (a sharer's, for a shared folder)")
    actor_id: str | None = Field(None, description="who sent the op, when not the owner (a sharee)")


class ConflictPage(BaseModel):
    """A page of conflicts, newest first."""

    items: list[MobileConflict]
    next_cursor: str | None


class PageQuery(Query):
    cursor: str | None = None
    limit: int | None = Field(None, ge=1, le=500)
