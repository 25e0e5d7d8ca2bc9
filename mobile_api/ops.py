"""Offline ops (CONTRACT §5): each op is refereed and applied in its own transaction, idempotent by op_id.

Per op: read the facts (node, ancestors, clashes) inside the transaction, ask `conflicts.decide`, carry the
decision out by composing files-service writes in the same session (restore, rename/move, trash, folder,
upload commit), record any conflict with its outbox event, and store the result under `(caller, op_id)`.
A retried batch therefore returns the first results and changes nothing. An op that cannot be done is
`rejected` — its transaction rolls back, only the result is stored — and the batch goes on.

An op on a node in a folder shared with the caller read-write (issue 19) runs in the owner's tree, as the
owner's (functions/files/shares.py decides through `files.share_access`): the same referee against the owner's
nodes, the owner's journal and events, a conflict recorded for the owner with the caller as its `actor`. It never
leaves the share: a read share is `read_only_share`, the shared folder itself `share_root`, a move between trees
`cross_owner_move`, a trashed shared folder `share_trashed`; a node not shared with the caller stays `not_found`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from functions.files import service as files
from mobile_api import bulk, conflicts, sync, tree
from mobile_api.conflicts import Action, Decision, Facts
from mobile_api.schemas import MAX_OPS, MobileOp
from runtime import devices
from runtime.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from runtime.ids import utcnow
from runtime.mongo import register_indexes, transaction
from runtime.schemas import BodyInvalid, validate

CHUNK = 100  # ops per transaction on the fast path


@register_indexes
def _indexes(db) -> None:
    db.mobile_ops.create_index([("owner", ASCENDING), ("created_at", ASCENDING)])


@dataclass
class Context:
    db: object
    mongo: object
    store: object
    owner: str  # whose tree the op runs in: the caller's, or a sharer's (see _tree_for)
    device: dict
    now: datetime
    fast: bool = False  # inside a whole-chunk transaction: skip friendly pre-checks, the unique index decides
    caller: str = ""  # who sent the op (results and idempotency are theirs); "" = the owner
    share: dict | None = None  # the share the op went through, when it runs in a sharer's tree

    def __post_init__(self):
        self.caller = self.caller or self.owner

    @property
    def device_id(self) -> str:
        return self.device["_id"]


class _Rejected(Exception):
    def __init__(self, result: dict):
        super().__init__(result.get("error", {}).get("code", "rejected"))
        self.result = result


def device_for(db, owner: str, device_id) -> dict:
    if not isinstance(device_id, str) or not device_id:
        raise BadRequest("device_id is required (register the phone with POST /mobile/v1/devices)",
                         code="invalid_device")
    device = devices.get_owned(db, owner, device_id)
    if device is None:
        raise NotFound("no such device", code="not_found", details={"device_id": device_id})
    return device


def apply_batch(db, mongo, store, owner: str, device_id, ops, now: datetime | None = None) -> dict:
    """`POST /mobile/v1/ops`: results in op order and the feed position after them.

    Ops are applied a chunk at a time in one transaction (one commit, one batched result write). When any op
    of the chunk is rejected or races another writer, that chunk is rolled back and redone op by op, each in
    its own transaction, so a rejection never undoes its neighbours.
    """
    if not isinstance(ops, list):
        raise BadRequest("ops must be a list", code="invalid_ops")
    if len(ops) > MAX_OPS:
        raise BadRequest(f"send at most {MAX_OPS} ops per request", code="too_many_ops", details={"max": MAX_OPS})
    device = device_for(db, owner, device_id)
    ctx = Context(db, mongo, store, owner, device, now or utcnow())
    results: list = [None] * len(ops)
    keys = {i: f"{owner}:{op['op_id']}" for i, op in enumerate(ops) if _malformed(op) is None}  # (caller, op_id)
    prior = {d["_id"]: d["result"] for d in db.mobile_ops.find({"_id": {"$in": list(set(keys.values()))}},
                                                               {"result": 1})} if keys else {}
    todo, first_of = [], {}
    for i, op in enumerate(ops):
        if i not in keys:
            results[i] = apply_op(ctx, op)  # malformed: rejected, nothing stored
        elif keys[i] in prior:
            results[i] = prior[keys[i]]
        elif keys[i] in first_of:
            continue  # the same op_id twice in one batch: answered with the first one's result below
        else:
            first_of[keys[i]] = i
            todo.append(i)
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        for i, result in zip(chunk, _apply_chunk(ctx, [ops[i] for i in chunk]), strict=True):
            results[i] = result
    for i in keys:
        if results[i] is None:
            results[i] = results[first_of[keys[i]]]
    return {"results": results, "cursor": sync.current_cursor(db, owner)}


def _apply_chunk(ctx: Context, chunk: list[dict]) -> list[dict]:
    fast = replace(ctx, fast=True)

    def run(session):
        results = bulk.try_apply(fast, chunk, session)
        if results is None:
            results = [_dispatch(fast, op, session) for op in chunk]
        docs = [{"_id": f"{ctx.caller}:{op['op_id']}", "owner": ctx.caller, "op_id": op["op_id"], "result": r,
                 "created_at": ctx.now} for op, r in zip(chunk, results, strict=True)]
        ctx.db.mobile_ops.insert_many(docs, session=session)
        return results

    if len(chunk) > 1:
        try:
            return transaction(ctx.mongo, run)
        except (ApiError, DuplicateKeyError, BulkWriteError, bulk.Raced):
            pass  # some op is rejected or raced: redo them one by one
    return [apply_op(ctx, op) for op in chunk]


def apply_op(ctx: Context, op) -> dict:
    """One op in its own transaction (the careful path): a rejection stores only its result."""
    op_id = op.get("op_id") if isinstance(op, dict) else None
    problem = _malformed(op)
    if problem:
        return _rejected(op_id if isinstance(op_id, str) else None, "invalid_op", problem)
    key = f"{ctx.caller}:{op_id}"

    def run(session):
        again = ctx.db.mobile_ops.find_one({"_id": key}, {"result": 1}, session=session)
        if again is not None:
            return again["result"]
        result = _referee(ctx, op, session)
        ctx.db.mobile_ops.insert_one({"_id": key, "owner": ctx.caller, "op_id": op_id, "result": result,
                                      "created_at": ctx.now}, session=session)
        return result

    for _ in range(3):
        try:
            return transaction(ctx.mongo, run)
        except _Rejected as rejected:
            return _store_rejection(ctx, key, op_id, rejected.result)
        except DuplicateKeyError:
            continue  # a racing writer took the name (or this op_id) first: referee again on the new state
    return _store_rejection(ctx, key, op_id, _rejected(op_id, "busy", "the folder kept changing; send the op again"))


def _store_rejection(ctx: Context, key: str, op_id: str, result: dict) -> dict:
    try:
        ctx.db.mobile_ops.insert_one({"_id": key, "owner": ctx.caller, "op_id": op_id, "result": result,
                                      "created_at": ctx.now})
    except DuplicateKeyError:
        return ctx.db.mobile_ops.find_one({"_id": key})["result"]
    return result


def _malformed(op) -> str | None:
    """What is wrong with one op by the MobileOp model (the one /openapi.json shows), or None."""
    try:
        validate(MobileOp, op, whole="op")
    except BodyInvalid as problem:
        return problem.message
    return None


def _rejected(op_id, code: str, message: str, details: dict | None = None) -> dict:
    return {"op_id": op_id, "status": "rejected", "error": {"code": code, "message": message,
                                                            "details": details or {}}}


def _referee(ctx: Context, op: dict, session) -> dict:
    try:
        return _dispatch(ctx, op, session)
    except ApiError as err:
        if err.status in (400, 403, 404, 409, 410):
            raise _Rejected(_rejected(op["op_id"], err.code, err.message, err.details)) from None
        raise


# --------------------------------------------------------------------------------------------- the ops


def _dispatch(ctx: Context, op: dict, session) -> dict:
    kind = op["type"]
    ctx = _tree_for(ctx, op, session)
    if kind == "create_folder":
        return _create_folder(ctx, op, session)
    if kind == "commit_upload":
        return _commit_upload(ctx, op, session)
    node = files.get_node(ctx.db, ctx.owner, op["node_id"], session)
    if node.get("parent_id") is None:
        raise BadRequest("the root folder cannot be renamed, moved or deleted", code="root_immutable")
    if op["base_rev"] > int(node.get("rev", 0)):
        raise BadRequest("base_rev is newer than the node", code="invalid_base_rev",
                         details={"node": files.node_json(node)})
    trashed = node.get("trashed_at") is not None  # trash is recursive (files.trash marks the whole subtree)
    if kind == "delete":
        decision = conflicts.decide("delete", Facts(node=node, node_trashed=trashed), op["base_rev"])
        if decision.action is Action.APPLY and not trashed:
            node = files.trash(ctx.db, ctx.mongo, ctx.owner, node["_id"], session=session, device_id=ctx.device_id)
        return _result(ctx, op, node, decision, session)
    if kind == "rename":
        name = files.check_name(op["name"])
        decision = conflicts.decide("rename", Facts(node=node, node_trashed=trashed), op["base_rev"])
        if decision.action is not Action.APPLY:
            return _result(ctx, op, node, decision, session)
        if trashed:
            _restore(ctx, node["_id"], session)
        if ctx.fast and not trashed:  # the unique index refuses a taken name; the careful path explains it
            if name != node["name"]:
                node = files.write_node(ctx.db, ctx.owner, node, {"name": name}, session=session,
                                        device_id=ctx.device_id)
        else:
            node = files.rename(ctx.db, ctx.mongo, ctx.owner, node["_id"], name, session=session,
                                device_id=ctx.device_id)
        return _result(ctx, op, node, decision, session)
    target = files.get_node(ctx.db, ctx.owner, op["parent_id"], session)
    if target["kind"] != "folder":
        raise BadRequest("parent_id must be a folder", code="not_a_folder")
    target_chain = [target, *tree.chain(ctx.db, ctx.owner, target, session)] if node["kind"] == "folder" else []
    facts = Facts(node=node, node_trashed=trashed, target_trashed=target.get("trashed_at") is not None,
                  cycle=any(a["_id"] == node["_id"] for a in target_chain))
    decision = conflicts.decide("move", facts, op["base_rev"])
    if decision.action is Action.REJECT:
        doc = _record(ctx, op, node, decision, session)
        return {"op_id": op["op_id"], "status": "rejected", "node": sync.node_view(node),
                "conflict": {"id": doc["_id"], "type": decision.conflict, "resolution": decision.resolution}}
    if decision.action is not Action.APPLY:
        return _result(ctx, op, node, decision, session)
    if facts.target_trashed:
        _restore(ctx, target["_id"], session)
    if trashed:
        _restore(ctx, node["_id"], session)
    if ctx.fast and not trashed and not facts.target_trashed:
        if target["_id"] != node["parent_id"]:
            node = files.write_node(ctx.db, ctx.owner, node, {"parent_id": target["_id"]}, session=session,
                                    device_id=ctx.device_id)
    else:
        node = files.move(ctx.db, ctx.mongo, ctx.owner, node["_id"], target["_id"], session=session,
                          device_id=ctx.device_id)
    return _result(ctx, op, node, decision, session)


# ------------------------------------------------------------------------------------- shared folders


def _tree_for(ctx: Context, op: dict, session) -> Context:
    """The context the op runs in: the caller's own tree, or a sharer's when every node it names lies in a folder
    shared with the caller read-write. Only the caller's nodes and shared ones are looked at; anything else goes
    on in the caller's tree, where it is `not_found` as it always was."""
    if ctx.owner != ctx.caller:
        return ctx  # already resolved (the careful path redoes a chunk op)
    kind = op["type"]
    if kind == "commit_upload":
        owner, share = files.share_upload_access(ctx.db, ctx.caller, op["upload_id"])
        return _through(ctx, owner, share, session)
    if kind == "create_folder":
        return _shared(ctx, op["parent_id"], session)
    mine = _shared(ctx, op["node_id"], session, moving=True)
    if kind != "move":
        return mine
    there = _shared(ctx, op["parent_id"], session)
    if there.owner != mine.owner:
        if there.owner != ctx.caller or tree.get(ctx.db, ctx.caller, op["parent_id"], session) is not None:
            raise Forbidden("a node moves only within one tree: into or out of a shared folder it would change "
                            "owner; copy it instead", code="cross_owner_move",
                            details={"node_id": op["node_id"], "parent_id": op["parent_id"]})
        raise NotFound("no such folder", code="not_found", details={"id": op["parent_id"]})
    return mine


def _shared(ctx: Context, node_id, session, moving: bool = False) -> Context:
    """One lookup by id: the caller's own node (or an unknown one) stays in the caller's tree."""
    owner, share = files.share_access(ctx.db, ctx.caller, node_id, write=True, moving=moving)
    return _through(ctx, owner, share, session)


def _through(ctx: Context, owner: str, share: dict | None, session) -> Context:
    if share is None or owner == ctx.caller:
        return ctx
    top = tree.get(ctx.db, owner, share["folder_id"], session)
    if top is None or top.get("purged") or top.get("trashed_at") is not None:
        # the owner trashed the shared folder: it has left the sharee's tree; only the owner brings it back
        raise Conflict("the shared folder is in its owner's trash", code="share_trashed",
                       details={"share_id": share["_id"]})
    return replace(ctx, owner=owner, share=share)


def _restore(ctx: Context, node_id: str, session) -> None:
    """Restore a node with its trashed ancestors (files.restore); the outermost one comes back under a
    conflicted-copy name when its name was taken meanwhile (files.restore itself never renames)."""
    node = files.get_node(ctx.db, ctx.owner, node_id, session)
    trashed = [n for n in [node, *tree.chain(ctx.db, ctx.owner, node, session)] if n.get("trashed_at") is not None]
    if not trashed:
        return
    top = trashed[-1]
    parent = tree.get(ctx.db, ctx.owner, top.get("parent_id"), session)
    parent_id = parent["_id"] if parent and not parent.get("purged") else \
        files.get_root(ctx.db, ctx.owner, session)["_id"]
    free = _free_name(ctx, parent_id, top["name"], session)
    if free != top["name"]:
        files.write_node(ctx.db, ctx.owner, top, {"name": free}, session=session, device_id=ctx.device_id)
    files.restore(ctx.db, ctx.mongo, ctx.owner, node_id, session=session, device_id=ctx.device_id)


def _free_name(ctx: Context, parent_id, name: str, session) -> str:
    """`name`, or the first conflicted-copy name nobody in the folder holds."""
    if tree.live_child(ctx.db, ctx.owner, parent_id, name, session) is None:
        return name
    for attempt in range(1, 1000):
        candidate = conflicts.conflicted_copy_name(name, ctx.device.get("name") or "device", ctx.now, attempt)
        if tree.live_child(ctx.db, ctx.owner, parent_id, candidate, session) is None:
            return candidate
    raise BadRequest("no free conflicted-copy name in this folder", code="name_taken")


def _record(ctx: Context, op: dict, node: dict, decision: Decision, session) -> dict:
    summary = {k: op[k] for k in ("op_id", "type", "node_id", "parent_id", "name", "base_rev", "upload_id")
               if k in op}
    return conflicts.record(ctx.db, ctx.owner, decision.conflict, decision.resolution, node["_id"], ctx.device_id,
                            summary, session=session, now=ctx.now,
                            actor=ctx.caller if ctx.caller != ctx.owner else None)


def _result(ctx: Context, op: dict, node: dict, decision: Decision, session) -> dict:
    result = {"op_id": op["op_id"], "status": decision.status, "node": sync.node_view(node)}
    if decision.conflict:
        doc = _record(ctx, op, node, decision, session)
        result["conflict"] = {"id": doc["_id"], "type": decision.conflict, "resolution": decision.resolution}
    return result


def _target(ctx: Context, parent_id, session) -> tuple[dict, bool]:
    target = files.get_node(ctx.db, ctx.owner, parent_id, session)
    if target["kind"] != "folder":
        raise BadRequest("parent_id must be a folder", code="not_a_folder")
    return target, target.get("trashed_at") is not None


def _create_folder(ctx: Context, op: dict, session) -> dict:
    name = files.check_name(op["name"])
    target, target_trashed = _target(ctx, op["parent_id"], session)
    if target_trashed:
        _restore(ctx, target["_id"], session)
    clash = tree.live_child(ctx.db, ctx.owner, target["_id"], name, session)
    decision = conflicts.decide("create_folder", Facts(target_trashed=target_trashed, clash=clash))
    if decision.action is Action.MERGE:
        return _result(ctx, op, clash, decision, session)
    if decision.action is Action.COPY:
        name = _free_name(ctx, target["_id"], name, session)
    node = files.create_folder(ctx.db, ctx.mongo, ctx.owner, target["_id"], name, session=session,
                               device_id=ctx.device_id)
    return _result(ctx, op, node, decision, session)


def _commit_upload(ctx: Context, op: dict, session) -> dict:
    upload = files.get_upload(ctx.db, ctx.owner, op["upload_id"], session)
    if upload.get("status") == "committed":
        node = files.get_node(ctx.db, ctx.owner, (upload.get("result") or {}).get("node_id"), session)
        return _result(ctx, op, node, conflicts.APPLY, session)
    uploaded = files.content_hash(upload["blocks"])

    def commit(**where) -> dict:
        return files.commit_into(ctx.db, ctx.store, ctx.owner, upload, session=session, device_id=ctx.device_id,
                           now=ctx.now, **where)

    if upload.get("node_id"):
        node = files.get_node(ctx.db, ctx.owner, upload["node_id"], session)
        if node["kind"] != "file":
            raise BadRequest("only a file's content can be overwritten", code="not_a_file")
        trashed = node.get("trashed_at") is not None
        decision = conflicts.decide("commit_upload", Facts(node=node, node_trashed=trashed, content_hash=uploaded),
                                    int(upload.get("base_rev") or 0))
        if decision.restore:
            _restore(ctx, node["_id"], session)
        if decision.action is Action.COPY:
            name = _free_name(ctx, node["parent_id"], node["name"], session)
            return _result(ctx, op, commit(parent_id=node["parent_id"], name=name), decision, session)
        return _result(ctx, op, commit(node_id=node["_id"]), decision, session)
    name = files.check_name(upload.get("name"))
    target, target_trashed = _target(ctx, upload.get("parent_id"), session)
    if target_trashed:
        _restore(ctx, target["_id"], session)
    clash = tree.live_child(ctx.db, ctx.owner, target["_id"], name, session)
    decision = conflicts.decide("commit_upload", Facts(target_trashed=target_trashed, clash=clash,
                                                       content_hash=uploaded))
    if decision.action is Action.MERGE:
        return _result(ctx, op, clash, decision, session)
    if decision.action is Action.COPY:
        name = _free_name(ctx, target["_id"], name, session)
    return _result(ctx, op, commit(parent_id=target["_id"], name=name), decision, session)
