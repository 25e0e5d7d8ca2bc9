"""Offline ops (CONTRACT §5): each op is refereed and applied in its own transaction, idempotent by op_id.

Per op: read the facts (node, ancestors, clashes) inside the transaction, ask `conflicts.decide`, carry the
decision out with `mobile_api.tree` writes (and the files service for upload commits), record any conflict
with its outbox event, and store the result under `(owner, op_id)` — all in that one transaction, so a
retried batch returns the first results and changes nothing. An op that cannot be done is `rejected`
(nothing written except its result) and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from mobile_api import conflicts, sync, tree
from mobile_api.conflicts import Action, Facts
from runtime.errors import ApiError, BadRequest, NotFound
from runtime.ids import utcnow
from runtime.mongo import register_indexes, transaction

MAX_OPS = 1000
OP_TYPES = ("create_folder", "rename", "move", "delete", "commit_upload")
_REQUIRED = {"create_folder": ("parent_id", "name"), "rename": ("node_id", "name", "base_rev"),
             "move": ("node_id", "parent_id", "base_rev"), "delete": ("node_id", "base_rev"),
             "commit_upload": ("upload_id",)}

# commit(db, owner, upload, *, parent_id, name, node_id, session, device_id) -> node doc.
# Writes the uploaded content as a new file (node_id None) or over node_id, without checking base_rev:
# the referee has already decided. Supplied by mobile_api/uploads.py (over the files service).
Committer = Callable[..., dict]


@register_indexes
def _indexes(db) -> None:
    db.mobile_ops.create_index([("owner", ASCENDING), ("created_at", ASCENDING)])


@dataclass
class Context:
    db: object
    mongo: object
    owner: str
    device: dict
    commit: Committer | None
    now: datetime


class _Rejected(Exception):
    def __init__(self, result: dict):
        super().__init__(result.get("error", {}).get("code", "rejected"))
        self.result = result


def device_for(db, owner: str, device_id) -> dict:
    if not isinstance(device_id, str) or not device_id:
        raise BadRequest("device_id is required (register the phone with POST /mobile/v1/devices)",
                         code="invalid_device")
    device = db.devices.find_one({"_id": device_id, "owner": owner})
    if device is None:
        raise NotFound("no such device", code="not_found", details={"device_id": device_id})
    return device


def apply_batch(db, mongo, owner: str, device_id, ops, commit: Committer | None = None,
                now: datetime | None = None) -> dict:
    """`POST /mobile/v1/ops`: results in op order and the feed position after them."""
    if not isinstance(ops, list):
        raise BadRequest("ops must be a list", code="invalid_ops")
    if len(ops) > MAX_OPS:
        raise BadRequest(f"send at most {MAX_OPS} ops per request", code="too_many_ops",
                         details={"max": MAX_OPS})
    device = device_for(db, owner, device_id)
    ctx = Context(db, mongo, owner, device, commit, now or utcnow())
    results = [apply_op(ctx, op) for op in ops]
    return {"results": results, "cursor": sync.current_cursor(db, owner)}


def apply_op(ctx: Context, op) -> dict:
    op_id = op.get("op_id") if isinstance(op, dict) else None
    problem = _malformed(op)
    if problem:
        return _rejected(op_id if isinstance(op_id, str) else None, "invalid_op", problem)
    key = f"{ctx.owner}:{op_id}"
    prior = ctx.db.mobile_ops.find_one({"_id": key}, {"result": 1})
    if prior is not None:
        return prior["result"]

    def run(session):
        again = ctx.db.mobile_ops.find_one({"_id": key}, {"result": 1}, session=session)
        if again is not None:
            return again["result"]
        result = _referee(ctx, op, session)
        ctx.db.mobile_ops.insert_one({"_id": key, "owner": ctx.owner, "op_id": op_id, "result": result,
                                      "created_at": ctx.now}, session=session)
        return result

    for _ in range(3):
        try:
            return transaction(ctx.mongo, run)
        except _Rejected as rejected:
            return _store_rejection(ctx, key, op_id, rejected.result)
        except DuplicateKeyError:
            # a racing op took the name (or the same op_id) first: referee again against the new state
            continue
    return _store_rejection(ctx, key, op_id, _rejected(op_id, "busy", "the folder kept changing; retry the op"))


def _store_rejection(ctx: Context, key: str, op_id: str, result: dict) -> dict:
    try:
        ctx.db.mobile_ops.insert_one({"_id": key, "owner": ctx.owner, "op_id": op_id, "result": result,
                                      "created_at": ctx.now})
    except DuplicateKeyError:
        return ctx.db.mobile_ops.find_one({"_id": key})["result"]
    return result


def _malformed(op) -> str | None:
    if not isinstance(op, dict):
        return "each op is a JSON object"
    op_id = op.get("op_id")
    if not isinstance(op_id, str) or not 1 <= len(op_id) <= 128:
        return "op_id must be a string of 1-128 characters"
    kind = op.get("type")
    if kind not in OP_TYPES:
        return f"type must be one of {', '.join(OP_TYPES)}"
    missing = [f for f in _REQUIRED[kind] if op.get(f) is None]
    if missing:
        return f"{kind} needs {', '.join(missing)}"
    if "base_rev" in _REQUIRED[kind]:
        rev = op["base_rev"]
        if not isinstance(rev, int) or isinstance(rev, bool) or rev < 0:
            return "base_rev must be a non-negative integer"
    for field in ("node_id", "parent_id", "upload_id", "name"):
        if field in _REQUIRED[kind] and not isinstance(op[field], str):
            return f"{field} must be a string"
    return None


def _rejected(op_id, code: str, message: str, details: dict | None = None) -> dict:
    return {"op_id": op_id, "status": "rejected",
            "error": {"code": code, "message": message, "details": details or {}}}


def _reject_api(op_id, err: ApiError) -> _Rejected:
    return _Rejected(_rejected(op_id, err.code, err.message, err.details))


def _referee(ctx: Context, op: dict, session) -> dict:
    try:
        return _dispatch(ctx, op, session)
    except (NotFound, BadRequest) as err:
        raise _reject_api(op["op_id"], err) from None
    except ApiError as err:
        if err.status == 409:
            raise _reject_api(op["op_id"], err) from None
        raise


def _dispatch(ctx: Context, op: dict, session) -> dict:
    kind = op["type"]
    if kind == "create_folder":
        return _create_folder(ctx, op, session)
    if kind == "commit_upload":
        return _commit_upload(ctx, op, session)
    node = tree.require(ctx.db, ctx.owner, op["node_id"], session)
    if node.get("parent_id") is None:
        raise BadRequest("the root folder cannot be renamed, moved or deleted", code="root_immutable")
    if op["base_rev"] > int(node.get("rev", 0)):
        raise BadRequest("base_rev is newer than the node", code="invalid_base_rev",
                         details={"node": sync.node_view(node)})
    lineage = tree.chain(ctx.db, ctx.owner, node, session)
    node_trashed = node.get("trashed_at") is not None or any(a.get("trashed_at") for a in lineage)
    if kind == "delete":
        return _delete(ctx, op, node, node_trashed, session)
    if kind == "rename":
        name = tree.check_name(op["name"])
        clash = _clash(ctx, node.get("parent_id"), name, node, session)
        decision = conflicts.decide("rename", Facts(node=node, node_trashed=node_trashed, clash=clash),
                                    op["base_rev"])
        return _carry_out(ctx, op, node, decision, session, name=name, restore_chain=lineage)
    # move
    target = tree.require(ctx.db, ctx.owner, op["parent_id"], session, what="folder")
    if target["kind"] != "folder":
        raise BadRequest("parent_id must be a folder", code="not_a_folder")
    target_chain = [target, *tree.chain(ctx.db, ctx.owner, target, session)]
    cycle = any(a["_id"] == node["_id"] for a in target_chain)
    target_trashed = any(a.get("trashed_at") for a in target_chain)
    clash = _clash(ctx, target["_id"], node["name"], node, session)
    decision = conflicts.decide("move", Facts(node=node, node_trashed=node_trashed, target_trashed=target_trashed,
                                              clash=clash, cycle=cycle), op["base_rev"])
    restore = ([node] if node.get("trashed_at") else []) + list(reversed(target_chain))
    return _carry_out(ctx, op, node, decision, session, parent_id=target["_id"], restore_chain=restore,
                      restore_node=False)


def _clash(ctx: Context, parent_id, name: str, node: dict | None, session) -> dict | None:
    other = tree.live_child(ctx.db, ctx.owner, parent_id, name, session)
    if other is None or (node is not None and other["_id"] == node["_id"]):
        return None
    return other


def _restore(ctx: Context, nodes: list[dict], session) -> None:
    """Bring trashed nodes back, outermost first; one whose name was taken meanwhile gets a conflicted copy name."""
    for item in sorted(nodes, key=lambda n: _depth_within(nodes, n)):
        fresh = tree.get(ctx.db, ctx.owner, item["_id"], session)
        if fresh is None or fresh.get("trashed_at") is None:
            continue
        name = _free_name(ctx, fresh["parent_id"], fresh["name"], fresh, session)
        tree.update(ctx.db, ctx.owner, fresh, name=name, trashed=False, device_id=ctx.device["_id"], session=session)


def _depth_within(nodes: list[dict], node: dict) -> int:
    """How many of `nodes` are ancestors of `node`: restoring in this order goes outermost first."""
    ids = {n["_id"]: n for n in nodes}
    depth, parent = 0, node.get("parent_id")
    while parent in ids and depth < len(nodes):
        depth += 1
        parent = ids[parent].get("parent_id")
    return depth


def _free_name(ctx: Context, parent_id, name: str, node: dict | None, session) -> str:
    if _clash(ctx, parent_id, name, node, session) is None:
        return name
    for attempt in range(1, 100):
        candidate = conflicts.conflicted_copy_name(name, ctx.device.get("name") or "device", ctx.now, attempt)
        if _clash(ctx, parent_id, candidate, node, session) is None:
            return candidate
    raise BadRequest("no free conflicted-copy name in this folder", code="name_taken")


def _result(ctx: Context, op: dict, node: dict, decision: conflicts.Decision, session) -> dict:
    result = {"op_id": op["op_id"], "status": decision.status, "node": sync.node_view(node)}
    if decision.conflict:
        doc = conflicts.record(ctx.db, ctx.owner, decision.conflict, decision.resolution, node["_id"],
                               ctx.device["_id"], _op_summary(op), session=session, now=ctx.now)
        result["conflict"] = {"id": doc["_id"], "type": decision.conflict, "resolution": decision.resolution}
    return result


def _op_summary(op: dict) -> dict:
    return {k: op[k] for k in ("op_id", "type", "node_id", "parent_id", "name", "base_rev", "upload_id") if k in op}


def _carry_out(ctx: Context, op: dict, node: dict, decision: conflicts.Decision, session, *, name=None,
               parent_id=None, restore_chain=(), restore_node=True) -> dict:
    if decision.action is Action.REJECT:
        doc = conflicts.record(ctx.db, ctx.owner, decision.conflict, decision.resolution, node["_id"],
                               ctx.device["_id"], _op_summary(op), session=session, now=ctx.now)
        return {"op_id": op["op_id"], "status": "rejected", "node": sync.node_view(node),
                "conflict": {"id": doc["_id"], "type": decision.conflict, "resolution": decision.resolution}}
    if decision.action is Action.KEEP_SERVER:
        return _result(ctx, op, node, decision, session)
    if decision.restore:
        trashed = [n for n in restore_chain if n.get("trashed_at")]
        if restore_node and node.get("trashed_at"):
            trashed.append(node)
        _restore(ctx, trashed, session)
    fresh = tree.require(ctx.db, ctx.owner, node["_id"], session)
    dest_parent = parent_id if parent_id is not None else fresh["parent_id"]
    dest_name = name if name is not None else fresh["name"]
    if _clash(ctx, dest_parent, dest_name, fresh, session) is not None:
        raise _Rejected(_rejected(op["op_id"], "name_taken", "another node in that folder has this name",
                                  {"node": sync.node_view(fresh)}))
    trash = False if decision.restore else None
    updated = tree.update(ctx.db, ctx.owner, fresh, name=name, parent_id=parent_id, trashed=trash,
                          device_id=ctx.device["_id"], session=session)
    return _result(ctx, op, updated, decision, session)


def _delete(ctx: Context, op: dict, node: dict, node_trashed: bool, session) -> dict:
    decision = conflicts.decide("delete", Facts(node=node, node_trashed=node_trashed), op["base_rev"])
    if decision.action is Action.KEEP_SERVER or node_trashed:
        return _result(ctx, op, node, decision, session)
    updated = tree.update(ctx.db, ctx.owner, node, trashed=True, device_id=ctx.device["_id"], session=session)
    return _result(ctx, op, updated, decision, session)


def _target_folder(ctx: Context, parent_id, session) -> tuple[dict, list[dict]]:
    target = tree.require(ctx.db, ctx.owner, parent_id, session, what="folder")
    if target["kind"] != "folder":
        raise BadRequest("parent_id must be a folder", code="not_a_folder")
    return target, [target, *tree.chain(ctx.db, ctx.owner, target, session)]


def _create_folder(ctx: Context, op: dict, session) -> dict:
    name = tree.check_name(op["name"])
    target, lineage = _target_folder(ctx, op["parent_id"], session)
    facts = Facts(target_trashed=any(a.get("trashed_at") for a in lineage),
                  clash=_clash(ctx, target["_id"], name, None, session))
    decision = conflicts.decide("create_folder", facts)
    if decision.restore:
        _restore(ctx, [a for a in lineage if a.get("trashed_at")], session)
    if decision.action is Action.MERGE:
        return _result(ctx, op, facts.clash, decision, session)
    if decision.action is Action.COPY:
        name = _free_name(ctx, target["_id"], name, None, session)
    node = tree.create_folder(ctx.db, ctx.owner, target["_id"], name, ctx.device["_id"], session)
    return _result(ctx, op, node, decision, session)


def _commit_upload(ctx: Context, op: dict, session) -> dict:
    if ctx.commit is None:
        raise BadRequest("uploads are not available on this server", code="uploads_unavailable")
    upload = ctx.db.uploads.find_one({"_id": op["upload_id"], "owner": ctx.owner}, session=session)
    if upload is None:
        raise NotFound("no such upload", code="not_found", details={"upload_id": op["upload_id"]})
    content_hash = upload.get("content_hash")
    if upload.get("node_id"):
        node = tree.require(ctx.db, ctx.owner, upload["node_id"], session)
        if node["kind"] != "file":
            raise BadRequest("only a file's content can be overwritten", code="not_a_file")
        base_rev = int(upload.get("base_rev") or 0)
        lineage = tree.chain(ctx.db, ctx.owner, node, session)
        node_trashed = node.get("trashed_at") is not None or any(a.get("trashed_at") for a in lineage)
        decision = conflicts.decide("commit_upload", Facts(node=node, node_trashed=node_trashed,
                                                           content_hash=content_hash), base_rev)
        if decision.restore:
            _restore(ctx, [n for n in [*lineage, node] if n.get("trashed_at")], session)
        if decision.action is Action.COPY:
            name = _free_name(ctx, node["parent_id"], node["name"], None, session)
            created = ctx.commit(ctx.db, ctx.owner, upload, parent_id=node["parent_id"], name=name, node_id=None,
                                 session=session, device_id=ctx.device["_id"])
            return _result(ctx, op, created, decision, session)
        written = ctx.commit(ctx.db, ctx.owner, upload, parent_id=None, name=None, node_id=node["_id"],
                             session=session, device_id=ctx.device["_id"])
        return _result(ctx, op, written, decision, session)
    name = tree.check_name(upload.get("name"))
    target, lineage = _target_folder(ctx, upload.get("parent_id"), session)
    facts = Facts(target_trashed=any(a.get("trashed_at") for a in lineage),
                  clash=_clash(ctx, target["_id"], name, None, session), content_hash=content_hash)
    decision = conflicts.decide("commit_upload", facts)
    if decision.restore:
        _restore(ctx, [a for a in lineage if a.get("trashed_at")], session)
    if decision.action is Action.MERGE:
        return _result(ctx, op, facts.clash, decision, session)
    if decision.action is Action.COPY:
        name = _free_name(ctx, target["_id"], name, None, session)
    created = ctx.commit(ctx.db, ctx.owner, upload, parent_id=target["_id"], name=name, node_id=None,
                         session=session, device_id=ctx.device["_id"])
    return _result(ctx, op, created, decision, session)
