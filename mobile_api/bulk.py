"""The bulk path for the common case: a chunk of plain renames, moves and deletes of files, no conflicts.

A phone back online mostly sends ops nobody else touched. Instead of ~6 commands per op, such a chunk costs a
fixed handful inside the chunk's transaction: read the nodes and target folders (`$in`), take the chunk's
journal numbers with one `$inc`, write every node with one `bulk_write` guarded by each node's `rev`, and
insert the outbox events in one `insert_many`. The field rules are those of `functions.files.service.write_node`
(rev, per-field revs, live_key, seq). Anything else — a folder move (cycle check), a folder delete (subtree),
a conflict, a restore, a bad name — returns None before any write, and the caller takes the op-by-op path;
a name clash or a concurrent change raises, and the caller redoes the chunk op by op.
"""

from __future__ import annotations

from pymongo import ReturnDocument, UpdateOne

from functions.files import service as files
from mobile_api import conflicts, sync
from mobile_api.conflicts import Action, Facts
from runtime import events as outbox
from runtime.errors import ApiError


class Raced(Exception):
    """A node changed between our read and our write (outside this transaction's view)."""


def try_apply(ctx, chunk: list[dict], session) -> list[dict] | None:
    if len(chunk) < 2 or any(op["type"] not in ("rename", "move", "delete") for op in chunk):
        return None
    ids = [op["node_id"] for op in chunk]
    if len(set(ids)) != len(ids):
        return None
    nodes = {d["_id"]: d for d in ctx.db.nodes.find({"_id": {"$in": ids}, "owner": ctx.owner}, {"blocks": 0},
                                                    session=session)}
    targets_wanted = list({op["parent_id"] for op in chunk if op["type"] == "move"})
    targets = {d["_id"]: d for d in ctx.db.nodes.find({"_id": {"$in": targets_wanted}, "owner": ctx.owner},
                                                      {"blocks": 0}, session=session)} if targets_wanted else {}
    planned = []
    for op in chunk:
        node = nodes.get(op["node_id"])
        if node is None or node.get("parent_id") is None or node.get("trashed_at") is not None \
                or node["kind"] != "file" or op["base_rev"] > int(node.get("rev", 0)):
            return None
        decision = conflicts.decide(op["type"], Facts(node=node), op["base_rev"])
        if decision.action is not Action.APPLY or decision.conflict:
            return None
        if op["type"] == "rename":
            try:
                name = files.check_name(op["name"])
            except ApiError:
                return None
            fields = {"name": name} if name != node["name"] else {}
        elif op["type"] == "move":
            target = targets.get(op["parent_id"])
            if target is None or target["kind"] != "folder" or target.get("trashed_at") is not None:
                return None
            fields = {"parent_id": target["_id"]} if target["_id"] != node["parent_id"] else {}
        else:
            fields = {"trashed_at": ctx.now, "trash_group": node["_id"]}
        planned.append((op, node, fields))
    writes = [p for p in planned if p[2]]
    first = 0
    if writes:
        user = ctx.db.users.find_one_and_update({"_id": ctx.owner}, {"$inc": {"seq": len(writes)}}, session=session,
                                                projection={"seq": 1}, return_document=ReturnDocument.AFTER)
        first = int(user["seq"]) - len(writes) + 1
    updates, changed, written = [], [], {}
    for offset, (_op, node, fields) in enumerate(writes):
        changes = _next_revision(node, fields, first + offset, ctx.now)
        updates.append(UpdateOne({"_id": node["_id"], "owner": ctx.owner, "rev": node.get("rev", 0)},
                                 {"$set": changes}))
        changed.append(("node.changed", ctx.owner,
                        {"node_id": node["_id"], "seq": changes["seq"], "device_id": ctx.device_id}))
        written[node["_id"]] = {**node, **changes}
    if updates:
        done = ctx.db.nodes.bulk_write(updates, ordered=True, session=session)
        if done.matched_count != len(updates):
            raise Raced("a node changed while the chunk was applied")
        outbox.emit_many(ctx.db, changed, session=session, now=ctx.now)
    return [{"op_id": op["op_id"], "status": "applied", "node": sync.node_view(written.get(node["_id"], node))}
            for op, node, _ in planned]


def _next_revision(node: dict, fields: dict, seq: int, now) -> dict:
    """The `$set` of files.service.write_node for these fields (kept in step with it)."""
    rev = int(node.get("rev", 0)) + 1
    merged = {**node, **fields}
    changes = {**fields, "rev": rev, "updated_at": now, "seq": seq}
    if "name" in fields and fields["name"] != node.get("name"):
        changes.update(name_key=files.name_key(fields["name"]), name_rev=rev)
        merged["name_key"] = changes["name_key"]
    if "parent_id" in fields and fields["parent_id"] != node.get("parent_id"):
        changes["parent_rev"] = rev
    if merged.get("trashed_at") is not None:
        changes["live_key"] = node["_id"]
    else:
        changes["live_key"] = files.live_key(merged["parent_id"], merged["name_key"])
    return changes
