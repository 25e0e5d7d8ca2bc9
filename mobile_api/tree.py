"""Small tree writes the ops referee composes inside one transaction (data model: docs/internals.md).

Each write bumps the node's `rev`, stamps the per-field revision it touched (`name_rev`, `parent_rev`,
`content_rev`), takes the next `users.seq` for the changes feed and emits `node.changed` — all with the
caller's session, so a batch op that restores ancestors and renames commits or rolls back as one.
"""

from __future__ import annotations

import unicodedata

from pymongo import ASCENDING, ReturnDocument

from runtime import events
from runtime.errors import BadRequest, NotFound
from runtime.ids import new_id, utcnow
from runtime.mongo import register_indexes

NAME_MAX_BYTES = 255
MAX_DEPTH = 10_000


@register_indexes
def _indexes(db) -> None:
    db.nodes.create_index([("owner", ASCENDING), ("live_key", ASCENDING)], unique=True)
    db.nodes.create_index([("owner", ASCENDING), ("parent_id", ASCENDING)])


def check_name(name) -> str:
    """CONTRACT §3 name rules; returns the NFC form that is stored."""
    if not isinstance(name, str):
        raise BadRequest("name must be a string", code="invalid_name")
    name = unicodedata.normalize("NFC", name)
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if not 1 <= size <= NAME_MAX_BYTES or "/" in name or "\x00" in name or name in (".", ".."):
        raise BadRequest("a name is 1-255 UTF-8 bytes without '/' or NUL and is not '.' or '..'",
                         code="invalid_name", details={"name": name})
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("name is not valid UTF-8", code="invalid_name") from None
    return name


def name_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def live_key(parent_id: str | None, key: str) -> str:
    return f"{parent_id}/{key}"


def get(db, owner: str, node_id, session=None) -> dict | None:
    if not isinstance(node_id, str):
        return None
    return db.nodes.find_one({"_id": node_id, "owner": owner}, session=session)


def require(db, owner: str, node_id, session=None, what: str = "node") -> dict:
    node = get(db, owner, node_id, session)
    if node is None or node.get("purged"):
        raise NotFound(f"no such {what}", code="not_found", details={"id": node_id})
    return node


def chain(db, owner: str, node: dict, session=None) -> list[dict]:
    """The node's ancestors, parent first, up to the root."""
    out, seen, parent_id = [], {node["_id"]}, node.get("parent_id")
    while parent_id is not None and len(out) < MAX_DEPTH:
        parent = db.nodes.find_one({"_id": parent_id, "owner": owner}, session=session)
        if parent is None or parent["_id"] in seen:
            break
        seen.add(parent["_id"])
        out.append(parent)
        parent_id = parent.get("parent_id")
    return out


def live_child(db, owner: str, parent_id: str, name: str, session=None) -> dict | None:
    return db.nodes.find_one({"owner": owner, "live_key": live_key(parent_id, name_key(name))}, session=session)


def next_seq(db, owner: str, session=None, count: int = 1) -> int:
    """Allocate journal sequence numbers inside the caller's transaction (see mobile_api/sync.py)."""
    user = db.users.find_one_and_update({"_id": owner}, {"$inc": {"seq": count}}, session=session,
                                        projection={"seq": 1}, return_document=ReturnDocument.AFTER)
    if user is None:
        raise NotFound("no such user", code="not_found")
    return int(user["seq"]) - count + 1


def ensure_root(db, owner: str, session=None) -> dict:
    root = db.nodes.find_one({"owner": owner, "parent_id": None}, session=session)
    if root is not None:
        return root
    now = utcnow()
    node_id = new_id()
    doc = {"_id": node_id, "owner": owner, "parent_id": None, "name": "", "name_key": "", "live_key": "root",
           "kind": "folder", "rev": 1, "name_rev": 1, "parent_rev": 1, "content_rev": 1, "size": 0,
           "content_hash": None, "blocks": [], "mtime": now, "trashed_at": None,
           "seq": next_seq(db, owner, session), "created_at": now, "updated_at": now}
    db.nodes.insert_one(doc, session=session)
    return doc


def update(db, owner: str, node: dict, *, name: str | None = None, parent_id: str | None = None,
           trashed: bool | None = None, device_id: str | None = None, session=None) -> dict:
    """Change some fields of a node as one new revision; returns the node as stored now."""
    now = utcnow()
    rev = int(node.get("rev", 0)) + 1
    new_name = name if name is not None else node["name"]
    new_parent = parent_id if parent_id is not None else node.get("parent_id")
    is_trashed = trashed if trashed is not None else node.get("trashed_at") is not None
    fields: dict = {"rev": rev, "updated_at": now, "seq": next_seq(db, owner, session)}
    if name is not None and name != node["name"]:
        fields.update(name=new_name, name_key=name_key(new_name), name_rev=rev)
    if parent_id is not None and parent_id != node.get("parent_id"):
        fields.update(parent_id=new_parent, parent_rev=rev)
    if trashed is not None and trashed != (node.get("trashed_at") is not None):
        fields["trashed_at"] = now if trashed else None
    fields["live_key"] = node["_id"] if is_trashed else live_key(new_parent, name_key(new_name))
    db.nodes.update_one({"_id": node["_id"], "owner": owner}, {"$set": fields}, session=session)
    events.emit(db, "node.changed", owner, {"node_id": node["_id"], "seq": fields["seq"], "device_id": device_id},
                session=session)
    return {**node, **fields}


def create_folder(db, owner: str, parent_id: str, name: str, device_id: str | None = None, session=None) -> dict:
    now = utcnow()
    seq = next_seq(db, owner, session)
    doc = {"_id": new_id(), "owner": owner, "parent_id": parent_id, "name": name, "name_key": name_key(name),
           "live_key": live_key(parent_id, name_key(name)), "kind": "folder", "rev": 1, "name_rev": 1,
           "parent_rev": 1, "content_rev": 1, "size": 0, "content_hash": None, "blocks": [], "mtime": now,
           "trashed_at": None, "seq": seq, "created_at": now, "updated_at": now}
    db.nodes.insert_one(doc, session=session)
    events.emit(db, "node.changed", owner, {"node_id": doc["_id"], "seq": seq, "device_id": device_id},
                session=session)
    return doc
