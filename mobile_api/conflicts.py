"""The conflict referee (CONTRACT §5): what an offline op does to the tree, decided field by field.

`decide()` is a pure function over the facts the ops service gathered inside its transaction (the node's
current state and per-field revisions, trash state, name clashes, cycles) and the op with its `base_rev`.
It never touches the database, so every row of the contract's table is a plain unit test. The ops service
(mobile_api/ops.py) carries the decision out and records conflicts here (`record`, `list_conflicts`).
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pymongo import DESCENDING

from runtime import events
from runtime.errors import BadRequest
from runtime.ids import iso, new_id, utcnow
from runtime.mongo import register_indexes

NAME_MAX_BYTES = 255

# conflict types (CONTRACT §5 table)
DELETE_MODIFIED = "delete_modified"
MODIFY_DELETED = "modify_deleted"
MODIFY_MODIFIED = "modify_modified"
EDIT_EDIT = "edit_edit"
NAME_TAKEN = "name_taken"
CYCLE = "cycle"

# resolutions
KEPT_SERVER = "kept_server"
RESTORED = "restored"
CONFLICTED_COPY = "conflicted_copy"
MERGED = "merged"


class Action(StrEnum):
    APPLY = "apply"              # do what the op asks (after restoring, when `restore` is set)
    KEEP_SERVER = "keep_server"  # change nothing; the result is the node as the server has it
    COPY = "copy"                # write the device's version under the conflicted-copy name
    MERGE = "merge"              # an existing node already is what the op wanted; it stands for the result
    REJECT = "reject"            # change nothing; the op cannot be carried out


@dataclass(frozen=True)
class Facts:
    """What the referee needs to know, read inside the op's transaction."""

    node: dict | None = None        # the node a rename/move/delete/overwrite names (current state)
    node_trashed: bool = False      # that node, or one of its ancestors, is in the trash
    target_trashed: bool = False    # the destination folder (move, create, new upload) or an ancestor is trashed
    clash: dict | None = None       # a live node other than `node` already holding the resulting name
    cycle: bool = False             # the move would put a folder inside itself
    content_hash: str | None = None  # the uploaded content (commit_upload)


@dataclass(frozen=True)
class Decision:
    action: Action
    conflict: str | None = None
    resolution: str | None = None
    restore: bool = False  # restore the node and its trashed ancestors / the target's trashed ancestors first

    @property
    def status(self) -> str:
        if self.action is Action.REJECT:
            return "rejected"
        return "conflict" if self.conflict else "applied"


APPLY = Decision(Action.APPLY)


def _changed_since(node: dict, field: str, base_rev: int) -> bool:
    return int(node.get(f"{field}_rev", node.get("rev", 0))) > base_rev


def decide(op_type: str, facts: Facts, base_rev: int | None = None) -> Decision:
    """The referee. `op_type` is an op's `type`; overwrite uploads are `commit_upload` with a node."""
    if op_type == "create_folder":
        return _decide_create(facts, folder=True)
    if op_type == "commit_upload" and facts.node is None:
        return _decide_create(facts, folder=False)
    node = facts.node
    if node is None or base_rev is None:
        raise ValueError(f"{op_type} needs the node it names and a base_rev")
    if op_type == "delete":
        if facts.node_trashed:
            return APPLY  # already gone: deleting again changes nothing
        if any(_changed_since(node, f, base_rev) for f in ("name", "parent", "content")):
            return Decision(Action.KEEP_SERVER, DELETE_MODIFIED, KEPT_SERVER)
        return APPLY
    if op_type == "move" and facts.cycle:
        return Decision(Action.REJECT, CYCLE, KEPT_SERVER)
    if op_type in ("rename", "move"):
        field = "name" if op_type == "rename" else "parent"
        if facts.node_trashed:
            return Decision(Action.APPLY, MODIFY_DELETED, RESTORED, restore=True)
        if _changed_since(node, field, base_rev):
            return Decision(Action.KEEP_SERVER, MODIFY_MODIFIED, KEPT_SERVER)
        if facts.target_trashed:
            # the device moved it into a folder deleted meanwhile: bring that folder back rather than lose it
            return Decision(Action.APPLY, MODIFY_DELETED, RESTORED, restore=True)
        return APPLY
    if op_type == "commit_upload":
        if facts.node_trashed:
            return Decision(Action.APPLY, MODIFY_DELETED, RESTORED, restore=True)
        if _changed_since(node, "content", base_rev) and node.get("content_hash") != facts.content_hash:
            return Decision(Action.COPY, EDIT_EDIT, CONFLICTED_COPY)
        return APPLY
    raise ValueError(f"unknown op type {op_type!r}")


def _decide_create(facts: Facts, folder: bool) -> Decision:
    restore = facts.target_trashed
    clash = facts.clash
    if clash is None:
        if restore:
            return Decision(Action.APPLY, MODIFY_DELETED, RESTORED, restore=True)
        return APPLY
    if folder and clash.get("kind") == "folder":
        return Decision(Action.MERGE, NAME_TAKEN, MERGED, restore=restore)
    if not folder and clash.get("kind") == "file" and facts.content_hash is not None \
            and clash.get("content_hash") == facts.content_hash:
        return Decision(Action.MERGE, NAME_TAKEN, MERGED, restore=restore)
    return Decision(Action.COPY, NAME_TAKEN, CONFLICTED_COPY, restore=restore)


def conflicted_copy_name(name: str, device_name: str, when: datetime, attempt: int = 1) -> str:
    """`STEM (conflicted copy from DEVICE YYYY-MM-DD)EXT`; EXT from the last dot, none for dotfiles.

    `attempt` > 1 adds ` N` inside the parentheses when that name is taken too. The stem is shortened
    (never the suffix) so the result stays within 255 UTF-8 bytes.
    """
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    device = unicodedata.normalize("NFC", device_name.replace("/", "-").replace("\x00", "")).strip() or "device"
    number = f" {attempt}" if attempt > 1 else ""
    suffix = f" (conflicted copy from {device} {when:%Y-%m-%d}{number}){ext}"
    budget = NAME_MAX_BYTES - len(suffix.encode())
    if budget < 1:  # an absurdly long device name or extension: keep the contract's shape, shorten the device
        device = device.encode()[: max(1, NAME_MAX_BYTES // 4)].decode(errors="ignore")
        suffix = f" (conflicted copy from {device} {when:%Y-%m-%d}{number}){ext[:16]}"
        budget = NAME_MAX_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode(errors="ignore") or "file"
    return stem + suffix


# --- stored records -------------------------------------------------------------------------------------------

@register_indexes
def _indexes(db) -> None:
    db.conflicts.create_index([("owner", 1), ("created_at", DESCENDING), ("_id", DESCENDING)])
    db.conflicts.create_index([("actor", 1), ("created_at", DESCENDING), ("_id", DESCENDING)], sparse=True)


def record(db, owner: str, conflict_type: str, resolution: str, node_id: str | None, device_id: str | None,
           op: dict, session=None, now: datetime | None = None, actor: str | None = None) -> dict:
    """Store the conflict and its `conflict.created` outbox event in the caller's transaction.

    `owner` is whose tree it happened in; `actor` the sharee who sent the op when that is someone else (a folder
    shared with them): both list it, and push tells both (push/sharing.py reads `actor` from the event)."""
    doc = {"_id": new_id(), "owner": owner, "type": conflict_type, "resolution": resolution, "node_id": node_id,
           "device_id": device_id, "op": op, "created_at": now or utcnow()}
    payload = {"conflict_id": doc["_id"], "node_id": node_id, "type": conflict_type, "resolution": resolution,
               "device_id": device_id}
    if actor is not None and actor != owner:
        doc["actor"] = payload["actor"] = actor
    db.conflicts.insert_one(doc, session=session)
    events.emit(db, "conflict.created", owner, payload, session=session)
    return doc


def conflict_view(doc: dict) -> dict:
    return {"id": doc["_id"], "type": doc["type"], "resolution": doc["resolution"], "node_id": doc.get("node_id"),
            "device_id": doc.get("device_id"), "op": doc.get("op"), "created_at": iso(doc.get("created_at")),
            "owner_id": doc.get("owner"), "actor_id": doc.get("actor")}


def _encode_cursor(doc: dict) -> str:
    raw = f"{doc['created_at'].timestamp():.6f}|{doc['_id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, conflict_id = raw.split("|", 1)
        return datetime.fromtimestamp(float(stamp), tz=utcnow().tzinfo), conflict_id
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this server handed out", code="invalid_cursor") from None


def list_conflicts(db, owner: str, cursor: str | None = None, limit: int = 100) -> dict:
    """Newest first, paged by (created_at, id): the conflicts in the user's tree and those their ops caused in a
    folder shared with them (`actor`)."""
    query: dict = {"$or": [{"owner": owner}, {"actor": owner}]}
    if cursor:
        when, conflict_id = _decode_cursor(cursor)
        query = {"$and": [query, {"$or": [{"created_at": {"$lt": when}},
                                          {"created_at": when, "_id": {"$lt": conflict_id}}]}]}
    docs = list(db.conflicts.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
    more = len(docs) > limit
    docs = docs[:limit]
    return {"items": [conflict_view(d) for d in docs], "next_cursor": _encode_cursor(docs[-1]) if more else None}
