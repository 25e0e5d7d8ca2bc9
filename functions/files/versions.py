"""The one owner of `file_versions`: the previous contents of overwritten files (issue 19).

An overwrite (uploads.apply_content) calls `keep` inside its transaction: the content being replaced becomes a
version and each of its blocks gains one reference in `blocks.refs`, so block GC (gc.py) — which only collects
blocks with no references — never takes a block a kept version still needs. Dropping a version gives the
references back. Which versions a user sees is decided at read time (`visible`: the newest
PCLOUD_VERSIONS_KEEP, none older than PCLOUD_VERSIONS_DAYS); the periodic `prune` then drops the rest and
frees their blocks, so a burst of overwrites never makes the commit pay for the clean-up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, UpdateOne

from runtime.ids import as_utc, iso, new_id
from runtime.mongo import register_indexes, transaction

BATCH = 500


@register_indexes
def ensure_indexes(db) -> None:
    db.file_versions.create_index([("owner", ASCENDING), ("node_id", ASCENDING), ("rev", DESCENDING)])
    db.file_versions.create_index([("kept_at", ASCENDING)])


def keep(db, owner: str, node: dict, now: datetime, session) -> dict | None:
    """Inside the overwrite's transaction: `node`'s current content becomes a version (its blocks keep a ref)."""
    if node.get("kind") != "file" or node.get("content_hash") is None:
        return None
    blocks = list(node.get("blocks") or [])
    doc = {"_id": new_id(), "owner": owner, "node_id": node["_id"], "rev": int(node.get("rev", 0)),
           "name": node.get("name"), "size": int(node.get("size") or 0), "content_hash": node["content_hash"],
           "blocks": blocks, "mtime": node.get("mtime"), "kept_at": now}
    db.file_versions.insert_one(doc, session=session)
    unique = list(dict.fromkeys(blocks))
    if unique:
        db.blocks.bulk_write([UpdateOne({"_id": h}, {"$inc": {"refs": 1}, "$set": {"zero_since": None}})
                              for h in unique], ordered=False, session=session)
    return doc


def visible(db, owner: str, node_id: str, *, keep_count: int, days: int, now: datetime, session=None) -> list[dict]:
    """The versions a user may list and restore, newest first."""
    if keep_count <= 0:
        return []
    cutoff = now - timedelta(days=days)
    docs = db.file_versions.find({"owner": owner, "node_id": node_id, "kept_at": {"$gte": cutoff}},
                                 session=session).sort("rev", DESCENDING).limit(keep_count)
    return list(docs)


def _release(db, docs: list[dict], now: datetime, session) -> int:
    """Delete these versions and give back their block references."""
    if not docs:
        return 0
    refs: dict[str, int] = {}
    for doc in docs:
        for h in dict.fromkeys(doc.get("blocks") or []):
            refs[h] = refs.get(h, 0) + 1
    db.file_versions.delete_many({"_id": {"$in": [d["_id"] for d in docs]}}, session=session)
    if refs:
        db.blocks.bulk_write([UpdateOne({"_id": h}, {"$inc": {"refs": -n}}) for h, n in refs.items()],
                             ordered=False, session=session)
        db.blocks.update_many({"_id": {"$in": list(refs)}, "refs": {"$lte": 0}}, {"$set": {"zero_since": now}},
                              session=session)
    return len(docs)


def drop_for_nodes(db, owner: str, node_ids: list[str], now: datetime, session) -> int:
    """A purged file takes its versions with it (inside the purge's transaction)."""
    docs = list(db.file_versions.find({"owner": owner, "node_id": {"$in": node_ids}}, {"blocks": 1},
                                      session=session))
    return _release(db, docs, now, session)


def prune(db, mongo, *, keep_count: int, days: int, now: datetime, batch: int = BATCH) -> int:
    """Drop the versions `visible` no longer shows: older than `days`, or beyond the newest `keep_count`."""
    cutoff = now - timedelta(days=days)
    total = 0
    while True:  # by age
        found = list(db.file_versions.find({"kept_at": {"$lt": cutoff}}, {"blocks": 1}).limit(batch))
        if not found:
            break
        total += transaction(mongo, lambda s, found=found: _release(db, _still(db, found, s), now, s))
    over: list[dict] = []  # by count: walk each file's versions newest first
    last, seen = None, 0
    for doc in db.file_versions.find({}, {"owner": 1, "node_id": 1, "rev": 1, "blocks": 1}).sort(
            [("owner", ASCENDING), ("node_id", ASCENDING), ("rev", DESCENDING)]):
        key = (doc["owner"], doc["node_id"])
        seen = seen + 1 if key == last else 1
        last = key
        if seen > keep_count:
            over.append(doc)
    for start in range(0, len(over), batch):
        chunk = over[start:start + batch]
        total += transaction(mongo, lambda s, chunk=chunk: _release(db, _still(db, chunk, s), now, s))
    return total


def _still(db, docs: list[dict], session) -> list[dict]:
    """The versions of `docs` that still exist (a concurrent prune or purge may have taken some)."""
    ids = [d["_id"] for d in docs]
    return list(db.file_versions.find({"_id": {"$in": ids}}, {"blocks": 1}, session=session))


def version_json(doc: dict, *, current: bool = False) -> dict:
    return {"rev": int(doc.get("rev", 0)), "name": doc.get("name"), "size": int(doc.get("size") or 0),
            "content_hash": doc.get("content_hash"), "mtime": iso(doc.get("mtime")),
            "kept_at": None if current else iso(as_utc(doc.get("kept_at"))), "current": current}
