"""Maintenance of the files data: upload expiry, trash purge and block garbage collection (rq jobs, tasks.py).

Block GC is two-phase so that a concurrent commit can never reference a deleted block:
1. `mark_collectable` — in one transaction, blocks with no references for longer than the grace period and
   not named by any open upload are set `state: deleting`. A commit writes the same block documents in its
   own transaction, so the two conflict and exactly one wins; a commit that loses sees `deleting` and
   answers 409 `blocks_missing`.
2. `sweep` — delete the objects of blocks marked `deleting`, then their documents and owners.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import OperationFailure

from functions.files import eventlog, versions
from functions.files.tree import next_seq, now_ms
from runtime import events
from runtime.mongo import register_indexes, transaction
from runtime.store import BlobNotFound

log = logging.getLogger(__name__)
BLOCK_GRACE = timedelta(hours=1)
BATCH = 500


@register_indexes
def ensure_indexes(db) -> None:
    db.blocks.create_index([("state", ASCENDING)])


def expire_uploads(db, now: datetime | None = None, batch: int = BATCH, store=None) -> int:
    """Uploads never committed stop protecting their blocks. Negotiation writes no block documents (it must
    stay cheap), so expiry records the blocks nobody has a document for: GC then finds their bytes. What
    the upload staged and never claimed is dropped from the store."""
    now = now or now_ms()
    expired = 0
    while True:
        found = list(db.uploads.find({"status": "pending", "expires_at": {"$lte": now}}, {"blocks": 1, "size": 1})
                     .limit(batch))
        if not found:
            return expired
        for upload in found:
            hashes = list(dict.fromkeys(upload.get("blocks") or []))
            known = {d["_id"] for d in db.blocks.find({"_id": {"$in": hashes}}, {"_id": 1})} if hashes else set()
            unknown = [h for h in hashes if h not in known]
            if unknown:
                db.blocks.bulk_write([UpdateOne({"_id": h}, {"$setOnInsert": {"refs": 0, "zero_since": now,
                                                                                "state": "pending", "created_at": now}},
                                                upsert=True) for h in unknown], ordered=False)
            result = db.uploads.update_one({"_id": upload["_id"], "status": "pending"},
                                           {"$set": {"status": "expired", "blocks": []}})
            expired += result.modified_count
            if store is not None and result.modified_count:
                store.discard_staged(upload["_id"])


def purge_trash(db, mongo, trash_days: int, now: datetime | None = None, batch: int = BATCH) -> int:
    """Nodes in the trash for longer than `trash_days` become tombstones (`purged: true`, seen by the changes
    feed) and give up their block references. Returns how many nodes were purged."""
    now = now or now_ms()
    cutoff = now - timedelta(days=trash_days)
    query = {"trashed_at": {"$lte": cutoff}, "purged": {"$ne": True}}
    total = 0
    while True:
        found = list(db.nodes.find(query, {"owner": 1}).limit(batch))
        if not found:
            return total
        by_owner: dict[str, list[str]] = defaultdict(list)
        for doc in found:
            by_owner[doc["owner"]].append(doc["_id"])
        for owner, ids in by_owner.items():
            total += transaction(mongo, lambda s, owner=owner, ids=ids: _purge(db, owner, ids, cutoff, now, s))


def _purge(db, owner: str, ids: list[str], cutoff: datetime, now: datetime, session) -> int:
    nodes = list(db.nodes.find({"_id": {"$in": ids}, "owner": owner, "trashed_at": {"$lte": cutoff},
                                "purged": {"$ne": True}}, session=session))
    if not nodes:
        return 0
    first = next_seq(db, owner, session, count=len(nodes))
    refs: Counter = Counter()
    ops = []
    for i, node in enumerate(nodes):
        refs.update(set(node.get("blocks") or []))
        ops.append(UpdateOne({"_id": node["_id"]}, {"$set": {"purged": True, "blocks": [], "live_key": node["_id"],
                                                             "seq": first + i, "updated_at": now},
                                                    "$inc": {"rev": 1}}))
    db.nodes.bulk_write(ops, ordered=False, session=session)
    if refs:
        db.blocks.bulk_write([UpdateOne({"_id": h}, {"$inc": {"refs": -n}}) for h, n in refs.items()],
                             ordered=False, session=session)
        db.blocks.update_many({"_id": {"$in": list(refs)}, "refs": {"$lte": 0}}, {"$set": {"zero_since": now}},
                              session=session)
    versions.drop_for_nodes(db, owner, [n["_id"] for n in nodes], now, session)
    events.emit(db, "node.changed", owner, {"node_id": nodes[0]["_id"], "seq": first + len(nodes) - 1,
                                            "device_id": None, "count": len(nodes), "purged": True}, session=session)
    eventlog.record(db, owner, "purged", [{**n, "purged": True} for n in nodes], session)
    return len(nodes)


def mark_collectable(db, mongo, now: datetime | None = None, grace: timedelta = BLOCK_GRACE,
                     limit: int = BATCH) -> list[str]:
    """Phase 1: mark unreferenced blocks `deleting` in one transaction; returns their hashes."""
    now = now or now_ms()
    cutoff = now - grace

    def fn(s):
        candidates = [d["_id"] for d in db.blocks.find(
            {"refs": {"$lte": 0}, "zero_since": {"$lte": cutoff}, "state": {"$ne": "deleting"}}, {"_id": 1},
            session=s).limit(limit)]
        if not candidates:
            return []
        wanted = set()
        for upload in db.uploads.find({"status": "pending", "expires_at": {"$gt": now}}, {"blocks": 1}, session=s):
            wanted.update(upload["blocks"])
        doomed = [h for h in candidates if h not in wanted]
        if doomed:
            db.blocks.update_many({"_id": {"$in": doomed}, "refs": {"$lte": 0}, "state": {"$ne": "deleting"}},
                                  {"$set": {"state": "deleting", "deleting_since": now}}, session=s)
        return doomed

    return _attempt_once(mongo, fn, [])


def _attempt_once(mongo, fn, on_conflict):
    """One transaction attempt: a write conflict means a commit is using these blocks, so leave them for the
    next run instead of retrying (the driver's helper would keep retrying for two minutes)."""
    with mongo.start_session() as session:
        try:
            with session.start_transaction():
                return fn(session)
        except OperationFailure as exc:
            if exc.has_error_label("TransientTransactionError") or exc.code in (112, 251):
                log.info("files gc: blocks in use by a concurrent commit; they wait for the next run")
                return on_conflict
            raise


def sweep(db, store, hashes: list[str] | None = None, limit: int = BATCH) -> int:
    """Phase 2: delete marked blocks from the store, then forget them. Without `hashes`, every marked block
    (also those a crashed run left behind)."""
    query = {"state": "deleting"}
    if hashes is not None:
        query["_id"] = {"$in": hashes}
    removed = 0
    for doc in list(db.blocks.find(query, {"_id": 1}).limit(limit if hashes is None else len(hashes))):
        digest = doc["_id"]
        try:
            store.delete(digest)
        except BlobNotFound:
            pass
        if db.blocks.delete_one({"_id": digest, "state": "deleting"}).deleted_count:
            db.block_owners.delete_many({"hash": digest})
            removed += 1
    return removed


def collect_blocks(db, mongo, store, now: datetime | None = None, grace: timedelta = BLOCK_GRACE) -> int:
    """Both phases until nothing is left to collect; returns how many blocks went."""
    total = sweep(db, store)
    while True:
        marked = mark_collectable(db, mongo, now, grace)
        if not marked:
            return total
        total += sweep(db, store, marked)
