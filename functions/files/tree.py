"""The per-user tree in MongoDB (docs/internals.md, `nodes`): names, keys, journal sequence, node shape.

Uniqueness of live sibling names is the unique index `(owner, live_key)`, never a read-then-write check, so two
racing creates cannot both win. Every write takes the next `users.seq` inside its own transaction; the
changes feed is `nodes` with `seq > cursor` sorted by `seq`.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime.errors import BadRequest, NotFound
from runtime.ids import iso, new_id, utcnow
from runtime.mongo import register_indexes

NAME_MAX_BYTES = 255
ROOT_LIVE_KEY = "root"  # the same key mobile_api/tree.py uses, so both create at most one root per user


@register_indexes
def ensure_indexes(db) -> None:
    db.nodes.create_index([("owner", ASCENDING), ("live_key", ASCENDING)], unique=True)
    db.nodes.create_index([("owner", ASCENDING), ("parent_id", ASCENDING)])
    db.nodes.create_index([("owner", ASCENDING), ("seq", ASCENDING)])
    db.nodes.create_index([("owner", ASCENDING), ("trash_group", ASCENDING)])
    db.nodes.create_index([("trashed_at", ASCENDING)])


def now_ms():
    """The current time at MongoDB's precision (milliseconds), so a node reads back exactly as it was written."""
    return truncate_ms(utcnow())


def truncate_ms(value):
    return value.replace(microsecond=value.microsecond // 1000 * 1000) if value is not None else None


def check_name(name) -> str:
    """CONTRACT §3: NFC, 1-255 UTF-8 bytes, no '/' or NUL, not '.' or '..'; returns the NFC form stored."""
    if not isinstance(name, str):
        raise BadRequest("name must be a string", code="invalid_name")
    try:
        name = unicodedata.normalize("NFC", name)
        size = len(name.encode("utf-8"))
    except UnicodeError:
        raise BadRequest("name is not valid UTF-8", code="invalid_name") from None
    if not 1 <= size <= NAME_MAX_BYTES or "/" in name or "\x00" in name or name in (".", ".."):
        raise BadRequest("a name is 1-255 UTF-8 bytes without '/' or NUL and is not '.' or '..'",
                         code="invalid_name", details={"name": name if size <= 1024 else name[:64] + "…"})
    return name


def name_key(name: str) -> str:
    """What sibling uniqueness compares: the casefold of the NFC form."""
    return unicodedata.normalize("NFC", name).casefold()


def live_key(parent_id: str | None, key: str) -> str:
    return f"{parent_id}/{key}"


def next_seq(db, owner: str, session=None, count: int = 1) -> int:
    """Allocate `count` journal numbers inside the caller's transaction; returns the first.

    The `$inc` on the user's document makes two concurrent writers of one user conflict, so seq order is
    commit order and a feed reader that saw seq N has seen everything below N.
    """
    user = db.users.find_one_and_update({"_id": owner}, {"$inc": {"seq": count}}, session=session,
                                        projection={"seq": 1}, return_document=ReturnDocument.AFTER)
    if user is None:
        raise NotFound("no such user", code="not_found")
    return int(user["seq"]) - count + 1


def new_node(owner: str, parent_id: str | None, name: str, kind: str, seq: int, *, size: int = 0,
             content_hash: str | None = None, blocks: list | None = None, mtime=None,
             node_id: str | None = None) -> dict:
    now = now_ms()
    key = name_key(name)
    return {"_id": node_id or new_id(), "owner": owner, "parent_id": parent_id, "name": name, "name_key": key,
            "live_key": ROOT_LIVE_KEY if parent_id is None else live_key(parent_id, key), "kind": kind,
            "rev": 1, "name_rev": 1, "parent_rev": 1, "content_rev": 1, "size": size,
            "content_hash": content_hash, "blocks": blocks or [], "mtime": mtime or now, "trashed_at": None,
            "trash_group": None, "seq": seq, "created_at": now, "updated_at": now}


def ensure_root(db, owner: str, session=None) -> dict:
    """The user's root folder, created on first use (parent_id null, name "")."""
    root = db.nodes.find_one({"owner": owner, "live_key": ROOT_LIVE_KEY}, session=session)
    if root is not None:
        return root
    doc = new_node(owner, None, "", "folder", next_seq(db, owner, session))
    try:
        db.nodes.insert_one(doc, session=session)
    except DuplicateKeyError:
        if session is not None:
            raise  # inside a transaction the caller's retry sees the winner's root
        return db.nodes.find_one({"owner": owner, "live_key": ROOT_LIVE_KEY})
    return doc


def node_json(doc: dict) -> dict:
    """The CONTRACT §3 node shape, plus `metadata` when the node has some (issue 19, metadata.py)."""
    view = {"id": doc["_id"], "parent_id": doc.get("parent_id"), "name": doc.get("name", ""),
            "kind": doc.get("kind"), "rev": int(doc.get("rev", 0)), "size": int(doc.get("size") or 0),
            "content_hash": doc.get("content_hash"), "mtime": iso(doc.get("mtime")),
            "trashed_at": iso(doc.get("trashed_at"))}
    if doc.get("metadata"):
        view["metadata"] = json.loads(doc["metadata"])
    return view


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(("n1:" + key).encode("utf-8")).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("n1:"):
        raise BadRequest("cursor is not one this server handed out", code="invalid_cursor")
    return raw[3:]
