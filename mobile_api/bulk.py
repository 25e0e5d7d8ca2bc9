"""The bulk path for the common case: a chunk of plain renames, moves and deletes of files, no conflicts.

A phone back online mostly sends ops nobody else touched. Instead of ~6 commands per op, such a chunk costs a
fixed handful inside the chunk's transaction: read the nodes and target folders (`$in`), take the chunk's
journal numbers with one `$inc`, write every node with one `bulk_write` guarded by each node's `rev`, and
insert the outbox and event-log events in one round trip each — all of it `files.write_many`, so the field
rules (rev, per-field revs, live_key, seq) and the events are the files function's own. Anything else — a
folder move (cycle check), a folder delete (subtree), a conflict, a restore, a bad name — returns None before
any write, and the caller takes the op-by-op path;
a name clash or a concurrent change raises, and the caller redoes the chunk op by op.
"""

from __future__ import annotations

from functions.files import service as files
from mobile_api import conflicts, sync
from mobile_api.conflicts import Action, Facts
from runtime.errors import ApiError

Raced = files.NodesRaced  # a node changed between our read and the write (the caller redoes the chunk op by op)


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
    writes = [(node, fields) for _op, node, fields in planned if fields]
    written = files.write_many(ctx.db, ctx.owner, writes, session=session, now=ctx.now, device_id=ctx.device_id)
    return [{"op_id": op["op_id"], "status": "applied", "node": sync.node_view(written.get(node["_id"], node))}
            for op, node, _ in planned]

