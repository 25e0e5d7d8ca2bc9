"""The files service: a user's tree and its uploads as plain Python (no Flask), for routes and mobile sync.

API for callers (mobile_api's ops referee composes these inside one transaction):
- Every write takes `(db, mongo, owner, …)` plus keyword `session=None` and `device_id=None`.
  Without `session` the function runs its own transaction (retrying write conflicts, duplicate keys turned
  into 409 `name_taken`); with `session` it runs inside the caller's and lets `DuplicateKeyError` through
  so the caller can referee again. `device_id` is copied into the `node.changed` / `file.committed` outbox
  events so push does not tickle the phone that made the change.
- Each change bumps `rev`, stamps `name_rev` / `parent_rev` / `content_rev` with the rev at which that field
  last changed, takes the next `users.seq` (the changes feed) and emits `node.changed`.
- Reads return node documents; `node_json(doc)` gives the CONTRACT shape. A node of another user, a purged
  one or a malformed id is `NotFound` (404), never 403.
- `base_rev=None` skips the revision check (the referee has already decided); an int that differs from the
  node's rev is 409 `stale_rev` with `details.node`.
- Trash is recursive: a folder's live subtree is trashed with it and every node records the group it went
  with (`trash_group` = the id of the node the user trashed); `restore` brings back that group below the
  node plus any trashed ancestors.
- Uploads: `negotiate_upload`, `commit_upload` (verify blocks then one transaction); the referee uses
  `commit_into(db, store, owner, upload, parent_id=, name=, node_id=, session=, device_id=)` which writes the
  content where it decided, without a base_rev check, inside its session (see functions/files/uploads.py).
"""

from __future__ import annotations

from pymongo import ASCENDING, UpdateOne

from functions.files import eventlog, tree
from functions.files.nodes import (
    MAX_DEPTH,
    NodesRaced,
    check_free,
    check_no_cycle,
    check_rev,
    get_node,
    live_folder,
    run,
    write_many,
    write_node,
)
from functions.files.paths import count_live, iter_live, owners, path_of, resolve
from functions.files.reading import content_node, iter_content
from functions.files.shares import access as share_access
from functions.files.shares import feed as shared_feed
from functions.files.shares import upload_access as share_upload_access
from functions.files.storage import metrics_text as storage_metrics
from functions.files.tree import check_name, ensure_root, live_key, name_key, next_seq, node_json, now_ms
from functions.files.uploads import (
    commit_into,
    commit_upload,
    content_hash,
    get_upload,
    negotiate_upload,
)
from runtime import events
from runtime.errors import BadRequest, Conflict, NotFound

__all__ = ["check_name", "ensure_root", "node_json", "get_node", "get_root", "list_children", "create_folder",
           "rename", "move", "update", "trash", "restore", "list_trash", "negotiate_upload", "commit_upload",
           "commit_into", "get_upload", "content_hash", "run", "check_rev", "check_free", "live_folder", "write_node",
           "live_key", "name_key", "count_live", "iter_live", "owners", "path_of", "resolve",
           "content_node", "iter_content",
           "write_many", "NodesRaced", "storage_metrics", "shared_feed", "share_access", "share_upload_access"]

# ----------------------------------------------------------------------------------------------- reads


def get_root(db, owner: str, session=None) -> dict:
    return ensure_root(db, owner, session)


def list_children(db, owner: str, parent_id, cursor: str | None = None, limit: int = 100,
                  session=None) -> tuple[list[dict], str | None]:
    """Live children ordered by name key; the cursor is the last name key (unique among live siblings)."""
    parent = get_node(db, owner, parent_id, session)
    if parent["kind"] != "folder":
        raise Conflict("only folders have children", code="not_a_folder", details={"id": parent_id})
    after = tree.decode_cursor(cursor)
    query = {"owner": owner, "parent_id": parent["_id"], "trashed_at": None, "purged": {"$ne": True}}
    if after is not None:
        query["name_key"] = {"$gt": after}
    docs = list(db.nodes.find(query, {"blocks": 0}, session=session).sort("name_key", ASCENDING).limit(limit + 1))
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (tree.encode_cursor(docs[-1]["name_key"]) if more else None)


def list_trash(db, owner: str, cursor: str | None = None, limit: int = 100, session=None):
    """The nodes the user trashed (not the subtrees that went with them), by id."""
    after = tree.decode_cursor(cursor)
    query: dict = {"owner": owner, "trash_group": {"$ne": None}, "purged": {"$ne": True}}
    if after is not None:
        query["_id"] = {"$gt": after}
    docs = []
    for doc in db.nodes.find(query, {"blocks": 0}, session=session).sort("_id", ASCENDING):
        if doc.get("trash_group") == doc["_id"]:
            docs.append(doc)
            if len(docs) > limit:
                break
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (tree.encode_cursor(docs[-1]["_id"]) if more else None)


# ------------------------------------------------------------------------------------------- checks


# ------------------------------------------------------------------------------------------- writes


def create_folder(db, mongo, owner: str, parent_id, name, *, session=None, device_id: str | None = None) -> dict:
    name = check_name(name)

    def fn(s):
        parent = live_folder(db, owner, parent_id, s)
        check_free(db, owner, parent["_id"], name, s)
        doc = tree.new_node(owner, parent["_id"], name, "folder", next_seq(db, owner, s))
        db.nodes.insert_one(doc, session=s)
        events.emit(db, "node.changed", owner, {"node_id": doc["_id"], "seq": doc["seq"], "device_id": device_id},
                    session=s)
        eventlog.record(db, owner, "created", [doc], s)
        return doc

    return run(mongo, session, fn)


def update(db, mongo, owner: str, node_id, *, name=None, parent_id=None, base_rev=None, session=None,
           device_id: str | None = None) -> dict:
    """Rename and/or move as one revision (PATCH). Unchanged fields cost nothing; no change, no new rev."""
    if name is not None:
        name = check_name(name)
    if parent_id is not None and not isinstance(parent_id, str):
        raise NotFound("no such folder", code="not_found", details={"id": parent_id})

    def fn(s):
        node = get_node(db, owner, node_id, s)
        check_rev(node, base_rev)
        if node.get("parent_id") is None:
            raise BadRequest("the root folder cannot be renamed or moved", code="root_immutable")
        if node.get("trashed_at") is not None:
            raise Conflict("the node is in the trash; restore it first", code="trashed",
                           details={"node": node_json(node)})
        fields = {}
        if name is not None and name != node["name"]:
            fields["name"] = name
        target_parent = node["parent_id"]
        if parent_id is not None and parent_id != node["parent_id"]:
            target = live_folder(db, owner, parent_id, s)
            if node["kind"] == "folder":
                check_no_cycle(db, owner, node, target, s)
            fields["parent_id"] = target_parent = target["_id"]
        if not fields:
            return node
        check_free(db, owner, target_parent, fields.get("name", node["name"]), s, except_id=node["_id"])
        written = write_node(db, owner, node, fields, session=s, device_id=device_id)
        # a folder renamed or moved changes the path of everything below it: each gets its event (with the path)
        below = _subtree(db, owner, written, {"trashed_at": None}, s) if written["kind"] == "folder" else []
        eventlog.record(db, owner, "updated", [written, *below], s)
        return written

    return run(mongo, session, fn)


def rename(db, mongo, owner: str, node_id, name, *, base_rev=None, session=None, device_id=None) -> dict:
    return update(db, mongo, owner, node_id, name=name, base_rev=base_rev, session=session, device_id=device_id)


def move(db, mongo, owner: str, node_id, parent_id, *, base_rev=None, session=None, device_id=None) -> dict:
    if not isinstance(parent_id, str):
        raise NotFound("no such folder", code="not_found", details={"id": parent_id})
    return update(db, mongo, owner, node_id, parent_id=parent_id, base_rev=base_rev, session=session,
                  device_id=device_id)


def _subtree(db, owner: str, top: dict, query: dict, session) -> list[dict]:
    """Descendants of `top` matching `query`, breadth first (parents before children)."""
    found, frontier = [], [top["_id"]] if top["kind"] == "folder" else []
    while frontier:
        children = list(db.nodes.find({"owner": owner, "parent_id": {"$in": frontier}, **query},
                                      {"blocks": 0}, session=session))
        found.extend(children)
        frontier = [c["_id"] for c in children if c["kind"] == "folder"]
    return found


def trash(db, mongo, owner: str, node_id, *, base_rev=None, session=None, device_id=None) -> dict:
    """Move a node and its live subtree to the trash as one group; returns the node. Trashing twice is a no-op."""

    def fn(s):
        node = get_node(db, owner, node_id, s)
        if node.get("parent_id") is None:
            raise BadRequest("the root folder cannot be trashed", code="root_immutable")
        if node.get("trashed_at") is not None and node.get("trash_group") == node["_id"]:
            return node
        check_rev(node, base_rev)
        now = now_ms()
        members = [node] + _subtree(db, owner, node, {"trashed_at": None}, s)
        first = next_seq(db, owner, s, count=len(members))
        fields = {"trashed_at": now, "trash_group": node["_id"]}
        top = write_node(db, owner, node, fields, session=s, seq=first, emit=False)
        ops = [UpdateOne({"_id": m["_id"], "owner": owner},
                         {"$set": {**fields, "live_key": m["_id"], "seq": first + i, "updated_at": now},
                          "$inc": {"rev": 1}})
               for i, m in enumerate(members[1:], start=1)]
        if ops:
            db.nodes.bulk_write(ops, ordered=False, session=s)
        events.emit(db, "node.changed", owner, {"node_id": node["_id"], "seq": first + len(members) - 1,
                                                "device_id": device_id, "count": len(members)}, session=s)
        eventlog.record(db, owner, "trashed", [top] + [{**m, **fields, "rev": int(m.get("rev", 0)) + 1}
                                                       for m in members[1:]], s)
        return top

    return run(mongo, session, fn)


def restore(db, mongo, owner: str, node_id, *, session=None, device_id=None) -> dict:
    """Bring a trashed node back with the part of its group below it, and its trashed ancestors.

    A node whose parent is gone (purged) comes back into the root. A live sibling with the same name is
    409 `name_taken`: nothing is renamed behind the user's back.
    """

    def fn(s):
        node = get_node(db, owner, node_id, s)
        if node.get("trashed_at") is None:
            return node
        chain, parent_id = [], node.get("parent_id")
        reparent = None
        while parent_id is not None and len(chain) < MAX_DEPTH:
            parent = db.nodes.find_one({"_id": parent_id, "owner": owner}, session=s)
            if parent is None or parent.get("purged"):
                reparent = ensure_root(db, owner, s)["_id"]
                break
            if parent.get("trashed_at") is None:
                break
            chain.append(parent)
            parent_id = parent.get("parent_id")
        if reparent is not None:  # the topmost trashed node goes to the root
            (chain[-1] if chain else node)["_reparent"] = reparent
        group = node.get("trash_group")
        below = _subtree(db, owner, node, {"trash_group": group, "trashed_at": {"$ne": None}}, s) if group else []
        ordered = list(reversed(chain)) + [node] + below
        first = next_seq(db, owner, s, count=len(ordered))
        chain_ids = {c["_id"] for c in chain}
        result, restored = node, []
        for i, member in enumerate(ordered):
            fields = {"trashed_at": None, "trash_group": None}
            if member.pop("_reparent", None):
                fields["parent_id"] = reparent
            if member is node or member["_id"] in chain_ids or "parent_id" in fields:
                check_free(db, owner, fields.get("parent_id", member["parent_id"]), member["name"], s,
                           except_id=member["_id"])
            written = write_node(db, owner, member, fields, session=s, seq=first + i, emit=False)
            restored.append(written)
            if member is node:
                result = written
        events.emit(db, "node.changed", owner, {"node_id": node["_id"], "seq": first + len(ordered) - 1,
                                                "device_id": device_id, "count": len(ordered)}, session=s)
        eventlog.record(db, owner, "restored", restored, s)
        return result

    return run(mongo, session, fn)
