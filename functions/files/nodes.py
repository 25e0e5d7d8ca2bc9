"""Node primitives shared by the tree operations (service.py) and uploads (uploads.py): one node read, the
revision and placement checks, and the one way a node's next revision is written.

They sit below both so that uploads never imports the service that exposes it (no import loop).
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from functions.files import eventlog, tree
from functions.files.tree import name_key, next_seq, node_json, now_ms
from runtime import events
from runtime.errors import BadRequest, Conflict, NotFound
from runtime.mongo import transaction

MAX_DEPTH = 4096


def run(mongo, session, fn: Callable):
    """fn(session) inside the caller's session, or in a transaction of its own with 409 for a name clash."""
    if session is not None:
        return fn(session)
    try:
        return transaction(mongo, fn)
    except DuplicateKeyError:
        raise Conflict("a live node with that name already exists in this folder", code="name_taken") from None


def get_node(db, owner: str, node_id, session=None) -> dict:
    if not isinstance(node_id, str) or not node_id:
        raise NotFound("no such node", code="not_found", details={"id": node_id})
    doc = db.nodes.find_one({"_id": node_id, "owner": owner}, session=session)
    if doc is None or doc.get("purged"):
        raise NotFound("no such node", code="not_found", details={"id": node_id})
    return doc


def check_rev(doc: dict, base_rev) -> None:
    if base_rev is None:
        return
    if isinstance(base_rev, bool) or not isinstance(base_rev, int):
        raise BadRequest("base_rev must be an integer", code="invalid_base_rev")
    if base_rev != int(doc.get("rev", 0)):
        raise Conflict("the node changed since base_rev", code="stale_rev", details={"node": node_json(doc)})


def live_folder(db, owner: str, folder_id, session=None) -> dict:
    """A parent that may receive children: exists, is a folder, is not in the trash."""
    folder = get_node(db, owner, folder_id, session)
    if folder["kind"] != "folder":
        raise Conflict("the parent is a file, not a folder", code="not_a_folder", details={"id": folder_id})
    if folder.get("trashed_at") is not None:
        raise Conflict("the folder is in the trash; restore it first", code="parent_trashed",
                       details={"id": folder_id})
    return folder


def check_free(db, owner: str, parent_id: str, name: str, session=None, except_id: str | None = None) -> None:
    """A friendly 409 with the clashing node; the unique index still decides races."""
    clash = db.nodes.find_one({"owner": owner, "live_key": tree.live_key(parent_id, name_key(name))},
                              session=session)
    if clash is not None and clash["_id"] != except_id:
        raise Conflict("a live node with that name already exists in this folder", code="name_taken",
                       details={"node": node_json(clash)})


def check_no_cycle(db, owner: str, node: dict, target: dict, session=None) -> None:
    """Moving a folder into itself or below itself is 409 `cycle`."""
    current, depth = target, 0
    while current is not None and depth < MAX_DEPTH:
        if current["_id"] == node["_id"]:
            raise Conflict("a folder cannot move into itself or its own subtree", code="cycle",
                           details={"id": node["_id"], "parent_id": target["_id"]})
        parent_id = current.get("parent_id")
        current = db.nodes.find_one({"_id": parent_id, "owner": owner}, session=session) if parent_id else None
        depth += 1


def next_revision(node: dict, fields: dict, seq: int, now, content: bool = False) -> dict:
    """The `$set` that makes `fields` the node's next revision: rev, per-field revs, seq, live_key."""
    rev = int(node.get("rev", 0)) + 1
    merged = {**node, **fields}
    changes = dict(fields)
    changes.update(rev=rev, updated_at=now, seq=seq)
    if "name" in fields and fields["name"] != node.get("name"):
        changes.update(name_key=name_key(fields["name"]), name_rev=rev)
        merged["name_key"] = changes["name_key"]
    if "parent_id" in fields and fields["parent_id"] != node.get("parent_id"):
        changes["parent_rev"] = rev
    if content:
        changes["content_rev"] = rev
    if merged.get("parent_id") is None:
        changes["live_key"] = tree.ROOT_LIVE_KEY
    elif merged.get("trashed_at") is not None or merged.get("purged"):
        changes["live_key"] = node["_id"]
    else:
        changes["live_key"] = tree.live_key(merged["parent_id"], merged["name_key"])
    return changes


def write_node(db, owner: str, node: dict, fields: dict, *, session, device_id: str | None = None,
               content: bool = False, seq: int | None = None, emit: bool = True) -> dict:
    """Store `fields` as the node's next revision (rev, per-field revs, seq, live_key) and emit node.changed."""
    changes = next_revision(node, fields, seq if seq is not None else next_seq(db, owner, session), now_ms(),
                            content=content)
    db.nodes.update_one({"_id": node["_id"], "owner": owner}, {"$set": changes}, session=session)
    if emit:
        events.emit(db, "node.changed", owner, {"node_id": node["_id"], "seq": changes["seq"], "device_id": device_id},
                    session=session)
    return {**node, **changes}


class NodesRaced(Exception):
    """A node changed between the caller's read and write_many (outside its transaction's view)."""


def write_many(db, owner: str, writes: list[tuple[dict, dict]], *, session, now, device_id: str | None = None
               ) -> dict[str, dict]:
    """Several nodes' next revisions in a fixed number of round trips (the mobile bulk path): one `$inc` for
    their journal numbers, one `bulk_write` guarded by each node's `rev` (NodesRaced when one moved on), the
    `node.changed` outbox events and the `files.node.updated|trashed` log events. Returns the written nodes
    by id. Only renames, moves and trashing of single files: the caller has checked names, targets, cycles."""
    if not writes:
        return {}
    first = next_seq(db, owner, session, count=len(writes))
    updates, changed, written = [], [], {}
    for offset, (node, fields) in enumerate(writes):
        changes = next_revision(node, fields, first + offset, now)
        updates.append(UpdateOne({"_id": node["_id"], "owner": owner, "rev": node.get("rev", 0)},
                                 {"$set": changes}))
        changed.append(("node.changed", owner, {"node_id": node["_id"], "seq": changes["seq"], "device_id": device_id}))
        written[node["_id"]] = {**node, **changes}
    done = db.nodes.bulk_write(updates, ordered=True, session=session)
    if done.matched_count != len(updates):
        raise NodesRaced("a node changed while the chunk was applied")
    events.emit_many(db, changed, session=session, now=now)
    trashed = [d for d in written.values() if d.get("trashed_at") is not None]
    eventlog.record(db, owner, "updated", [d for d in written.values() if d.get("trashed_at") is None], session)
    eventlog.record(db, owner, "trashed", trashed, session)
    return written
