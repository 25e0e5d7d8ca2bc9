"""The placement worker (issue 19): every block where its folders' policies want it, repaired, trimmed and
scrubbed in the background. Collections `block_placements`, `node_placements` and `storage_stats`, owned here.

State, not deltas, so any step can be repeated or killed midway:
- `node_placements[node]` = the addresses a file's current content occupies (its block hashes, or for a file
  sealed at rest the addresses of its ciphertext blocks, sealing.py) and the copies its policy wants.
- `block_placements[address]` = `have` (stores known to hold a good copy) and `wants` ({node id: [copies,
  stores or null]}): a block wants the most copies any file using it asks for. `dirty` marks documents to
  look at again.
- Inputs: the event log's `placement` consumer (every files.node.* event: the node is re-placed from its
  current state), `policy_changes` (a folder's subtree is re-placed), the read path's corruption reports, and
  `placement_wakeups` (collection owned here): a commit into an at_rest folder inserts one in its transaction;
  the scheduler's doorbell on that collection enqueues `run_requested` at once, which seals that node and
  drops its plaintext without waiting for the periodic pass (the plaintext window, docs/storage-durability.md).
- Repair: copies come from a copy that hashes right (ReplicatedBlobStore.read_verified) and go to the first
  healthy stores the policy allows; extra copies are trimmed only once the wanted ones exist. Too few healthy
  stores for a policy is `degraded` (reported in /metrics and GET /files/v1/storage), never an error to users.
- Scrub: each copy is re-hashed at least every PCLOUD_SCRUB_DAYS (a byte budget per run); a corrupt or missing
  copy leaves `have` and is deleted, and repair copies it back from a good one.
Blocks no file uses any more are not ours to delete: the block GC (gc.py) owns that, and deletes every copy.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError

from functions.files import policy
from functions.files.tree import now_ms
from runtime import events
from runtime.errors import ApiError
from runtime.ids import new_id
from runtime.mongo import register_indexes
from runtime.store import BlobNotFound, StoreUnavailable
from runtime.store.gdrive import is_user_store

log = logging.getLogger(__name__)
CONSUMER = "placement"
BATCH = 500
LEASE = timedelta(minutes=5)
SCRUB_BUDGET = 512 * 1024 * 1024  # bytes re-hashed per scrub run


@register_indexes
def ensure_indexes(db) -> None:
    db.block_placements.create_index([("dirty", ASCENDING)])
    db.block_placements.create_index([("state", ASCENDING)])
    db.block_placements.create_index([("scrubbed_at", ASCENDING)])
    db.placement_wakeups.create_index([("at", ASCENDING)])


def _bump(db, **counters) -> None:
    db.storage_stats.update_one({"_id": "totals"}, {"$inc": counters}, upsert=True)


def count_ack_fallback(db, wanted: str, used: str) -> None:
    """An upload's PUTs were signed for another store than its policy's first (that one was down): counted in
    /metrics (`ack_fallbacks`); repair moves the blocks where the policy wants them once the store is back."""
    _bump(db, ack_fallbacks=1)
    log.info("placement: uploads for store %s acknowledged on %s (it is down)", wanted, used)


def request_placement(db, owner: str, node_id: str, *, session=None, now=None) -> None:
    """Inside a commit's transaction: place (and seal) this node now, not at the next periodic pass."""
    db.placement_wakeups.insert_one({"owner": owner, "node_id": node_id, "at": now or now_ms()}, session=session)


# ------------------------------------------------------------------------------------------------ placing


def node_addresses(db, node: dict, sealer=None) -> list[str]:
    """The store addresses a file's current content occupies."""
    hashes = list(dict.fromkeys(node.get("blocks") or []))
    if sealer is not None and sealer.is_sealed(node):
        return sealer.addresses(node["owner"], hashes)
    return hashes


def place_node(db, store, node_id: str, owner: str, *, sealer=None, cache: dict | None = None) -> list[str]:
    """Make the node's placement match its current content and policy (idempotent); returns the addresses
    it marked dirty."""
    node = db.nodes.find_one({"_id": node_id, "owner": owner})
    old = db.node_placements.find_one({"_id": node_id}) or {}
    if node is None or node.get("purged") or node.get("kind") != "file":
        addresses, want = [], None
    else:
        effective = policy.resolve(db, owner, node, cache)
        if sealer is not None:
            node = sealer.converge(node, effective["encryption"]) or node
        addresses = node_addresses(db, node, sealer)
        want = [effective["replicas"], effective["stores"]]
    gone = [a for a in old.get("addresses", []) if a not in set(addresses)]
    if node is not None and addresses:  # a sealed file's plaintext blocks: looked at, so they can go
        gone += [h for h in dict.fromkeys(node.get("blocks") or []) if h not in set(addresses) and h not in gone]
    ops = [UpdateOne({"_id": a}, {"$unset": {f"wants.{node_id}": ""}, "$set": {"dirty": True},
                                  "$setOnInsert": {"have": None, "state": "new", "scrubbed_at": None}}, upsert=True)
           for a in gone]
    changed = [a for a in addresses if old.get("want") != want or a not in set(old.get("addresses", []))]
    ops += [UpdateOne({"_id": a}, {"$set": {f"wants.{node_id}": want, "dirty": True},
                                   "$setOnInsert": {"have": None, "state": "new", "scrubbed_at": None}},
                      upsert=True) for a in changed]
    if ops:
        db.block_placements.bulk_write(ops, ordered=False)
    if addresses:
        db.node_placements.update_one({"_id": node_id}, {"$set": {"owner": owner, "addresses": addresses,
                                                                  "want": want}}, upsert=True)
    else:
        db.node_placements.delete_one({"_id": node_id})
    return gone + changed


def drain_events(db, store, *, sealer=None, limit: int = BATCH) -> int:
    """Re-place every node the event log says changed; returns how many events were handled."""
    handled = 0
    while True:
        docs = events.claim(db, CONSUMER, limit=limit, lease_seconds=LEASE.total_seconds())
        if not docs:
            return handled
        cache: dict = {}
        for owner, subject in dict.fromkeys((d["owner"], d["subject"]) for d in docs):
            place_node(db, store, subject, owner, sealer=sealer, cache=cache)
        events.ack(db, CONSUMER, [d["_id"] for d in docs])
        handled += len(docs)
        serve_requests(db, store, sealer=sealer)  # a long backlog must not hold back a commit's sealing


def drain_policy_changes(db, store, *, sealer=None) -> int:
    """Re-place the subtree of every folder whose policy changed (oldest first); returns how many files."""
    placed = 0
    while True:
        change = db.policy_changes.find_one({}, sort=[("at", ASCENDING)])
        if change is None:
            return placed
        cache: dict = {}
        for node_id in policy.subtree_files(db, change["owner"], change["folder_id"]):
            place_node(db, store, node_id, change["owner"], sealer=sealer, cache=cache)
            placed += 1
        db.policy_changes.delete_one({"_id": change["_id"]})


def backfill(db) -> bool:
    """Once: queue every tree, so files written before the placement consumer existed get placed too."""
    if db.storage_stats.find_one({"_id": "backfill"}):
        return False
    now = now_ms()
    roots = list(db.nodes.find({"parent_id": None, "kind": "folder", "purged": {"$ne": True}}, {"owner": 1}))
    if roots:
        db.policy_changes.insert_many([{"owner": r["owner"], "folder_id": r["_id"], "at": now} for r in roots])
    db.storage_stats.update_one({"_id": "backfill"}, {"$set": {"at": now}}, upsert=True)
    return True


# ------------------------------------------------------------------------------------------------ repair


def _wanted(doc: dict, names: list[str]) -> tuple[int, list[str], int]:
    """(copies, candidate stores, copies asked for) on the configured stores: the strongest want wins; ties keep
    the first. A policy naming only per-user drives keeps its copies on any configured store."""
    best = None
    for value in (doc.get("wants") or {}).values():
        if value and (best is None or value[0] > best[0]):
            best = value
    if best is None:
        return 0, [], 0
    listed = [s for s in best[1] or [] if not is_user_store(s)]
    candidates = [s for s in (listed or names) if s in names]
    return min(best[0], len(candidates)), candidates, best[0]


def _mirrors(doc: dict) -> list[str]:
    """The per-user drives any want names: each gets a copy on top of `replicas` (the owner's own mirror)."""
    return list(dict.fromkeys(s for value in (doc.get("wants") or {}).values() if value
                              for s in value[1] or [] if is_user_store(s)))


def repair_one(db, store, doc: dict, *, sealer=None) -> str:
    """Bring one block to its policy; returns its state (ok, degraded, lost, unwanted)."""
    address, names = doc["_id"], store.names
    mirrors = _mirrors(doc)
    drives = [n for n in dict.fromkeys(mirrors + [h for h in doc.get("have") or [] if is_user_store(h)])
              if store.knows(n)]  # a disconnected or revoked drive's copies do not count
    have = doc.get("have")
    if have is None:  # first look: which stores hold it
        have = [n for n in names + drives if store.has(n, address)]
    have = [n for n in dict.fromkeys(have) if n in names or n in drives]
    copies, candidates, asked = _wanted(doc, names)
    if copies == 0:
        state = sealer.settle_unwanted(address, have) if sealer is not None else "unwanted"
        if state == "dropped":
            have = []
        _save(db, address, have, "unwanted" if state == "dropped" else state, doc)
        return state
    healthy = [n for n in candidates if store.healthy(n)]
    good = [n for n in have if n in candidates and store.healthy(n)]
    desired = good[:copies] + [n for n in healthy if n not in good][:max(0, copies - len(good))]
    mirrored = [n for n in mirrors if n in drives]
    copied = size = 0
    lost = False
    for target in [n for n in desired + [m for m in mirrored if store.healthy(m)] if n not in have]:
        try:
            source, data = store.read_verified(address, prefer=have)
        except (BlobNotFound, ApiError) as exc:
            log.warning("placement: block %s has no good copy to repair from: %s", address, exc)
            lost = True
            break
        try:
            store.delete_from(target, address)  # a corrupt copy of the same size would otherwise be kept
            store.put_to(target, address, data)
        except StoreUnavailable:
            continue
        have.append(target)
        copied, size = copied + 1, size + len(data)
        if source is not None and source not in have:
            have.append(source)
    trimmed = 0
    if all(n in have for n in desired) and len(desired) >= copies:
        for extra in [n for n in have if n not in desired and n not in mirrored and store.healthy(n)]:
            if store.delete_from(extra, address):
                have.remove(extra)
                trimmed += 1
    if copied or trimmed:
        _bump(db, copies=copied, bytes_copied=size, trims=trimmed)
    good_now = [n for n in have if n in desired]
    if lost and not good_now:
        state = "lost"
    elif len(good_now) >= asked and all(m in have for m in mirrors):
        state = "ok"
    else:
        state = "degraded"
    _save(db, address, have, state, doc, want=asked)
    return state


def _save(db, address: str, have: list[str], state: str, doc: dict, want: int = 0) -> None:
    now = now_ms()
    fields = {"have": have, "state": state, "want": want, "checked_at": now}
    if state in ("ok", "unwanted"):
        fields["short_since"] = None
    elif not doc.get("short_since"):
        fields["short_since"] = now
    # a concurrent placement may have changed `wants` meanwhile: then the document stays dirty
    db.block_placements.update_one({"_id": address, "wants": doc.get("wants")}, {"$set": {**fields, "dirty": False}})
    db.block_placements.update_one({"_id": address}, {"$set": {"have": have, "state": state, "want": want}})


def repair(db, store, *, sealer=None, limit: int = BATCH) -> dict:
    """Every dirty block, and the degraded ones again (a store may be back); returns counts by state."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    while True:
        docs = [d for d in db.block_placements.find({"dirty": True}).limit(limit) if d["_id"] not in seen]
        if not docs:
            break
        for doc in docs:
            seen.add(doc["_id"])
            state = repair_one(db, store, doc, sealer=sealer)
            counts[state] = counts.get(state, 0) + 1
        serve_requests(db, store, sealer=sealer)
    for doc in db.block_placements.find({"state": {"$in": ["degraded", "new"]}}).limit(limit):
        if doc["_id"] not in seen:
            state = repair_one(db, store, doc, sealer=sealer)
            counts[state] = counts.get(state, 0) + 1
    return counts


def user_store_holders(db, address: str) -> list[str]:
    """The per-user stores (connected drives) known to hold a copy: where reads fall back and deletes reach."""
    doc = db.block_placements.find_one({"_id": address}, {"have": 1}) or {}
    return [n for n in doc.get("have") or [] if is_user_store(n)]


def forget_store(db, name: str) -> int:
    """A drive was disconnected: its copies no longer count (its blocks go back to repair, degraded)."""
    return db.block_placements.update_many({"have": name}, {"$pull": {"have": name}, "$set": {"dirty": True}}
                                           ).modified_count


def report_corrupt(db, name: str, address: str) -> None:
    """The read path found a copy that fails its hash: it no longer counts, and repair replaces it."""
    db.block_placements.update_one({"_id": address}, {"$pull": {"have": name}, "$set": {"dirty": True}})
    _bump(db, corrupt_reads=1)


# ------------------------------------------------------------------------------------------------- scrub


def scrub(db, store, *, days: int, budget: int = SCRUB_BUDGET, now=None) -> dict:
    """Re-hash the copies least recently checked (older than `days`), at most `budget` bytes."""
    now = now or now_ms()
    cutoff = now - timedelta(days=days)
    checked = hashed = corrupt = missing = 0
    query = {"have": {"$ne": None}, "$or": [{"scrubbed_at": None}, {"scrubbed_at": {"$lt": cutoff}}]}
    while hashed < budget:
        docs = list(db.block_placements.find(query).sort("scrubbed_at", ASCENDING).limit(100))
        if not docs:
            break
        for doc in docs:
            address, have, bad = doc["_id"], list(doc.get("have") or []), []
            for name in list(have):
                if not store.healthy(name):
                    continue
                try:
                    data = store.read_raw(name, address)
                except BlobNotFound:
                    bad.append(name)
                    missing += 1
                    continue
                except StoreUnavailable:
                    continue
                hashed += len(data)
                if hashlib.sha256(data).hexdigest() != address:
                    store.delete_from(name, address)
                    bad.append(name)
                    corrupt += 1
            checked += 1
            update = {"$set": {"scrubbed_at": now}}
            if bad:
                update["$pull"] = {"have": {"$in": bad}}
                update["$set"]["dirty"] = True
            db.block_placements.update_one({"_id": address}, update)
            if hashed >= budget:
                break
    _bump(db, scrubbed_blocks=checked, scrubbed_bytes=hashed, scrub_corrupt=corrupt, scrub_missing=missing)
    db.storage_stats.update_one({"_id": "totals"}, {"$set": {"last_scrub_at": now}}, upsert=True)
    return {"checked": checked, "bytes": hashed, "corrupt": corrupt, "missing": missing}


# -------------------------------------------------------------------------------------------------- runs


def lease(db, seconds: float = LEASE.total_seconds()) -> str | None:
    """One placement run at a time across workers (rq may start the next tick before this one ends)."""
    now, token = now_ms(), new_id()
    until = now + timedelta(seconds=seconds)
    if db.storage_stats.update_one({"_id": "lease", "until": {"$lt": now}},
                                   {"$set": {"until": until, "token": token}}).matched_count:
        return token
    try:
        db.storage_stats.insert_one({"_id": "lease", "until": until, "token": token})
        return token
    except DuplicateKeyError:
        return None


def release(db, token: str) -> None:
    db.storage_stats.update_one({"_id": "lease", "token": token}, {"$set": {"until": now_ms()}})


def serve_requests(db, store, *, sealer=None, limit: int = 100) -> int:
    """The nodes commits asked to have placed now (`placement_wakeups`, oldest first): each is placed — sealed,
    for an at_rest folder — and the blocks that changed for it are settled at once (the plaintext dropped, the
    copies made). Their events stay pending for the consumer, which then finds nothing left to do. Returns how
    many nodes were served. Call it holding the lease."""
    served = 0
    while True:
        docs = list(db.placement_wakeups.find({}).sort("at", ASCENDING).limit(limit))
        if not docs:
            return served
        cache: dict = {}
        touched: list[str] = []
        for owner, node_id in dict.fromkeys((d["owner"], d["node_id"]) for d in docs):
            touched += place_node(db, store, node_id, owner, sealer=sealer, cache=cache)
        for doc in db.block_placements.find({"_id": {"$in": list(dict.fromkeys(touched))}, "dirty": True}):
            repair_one(db, store, doc, sealer=sealer)
        db.placement_wakeups.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        _bump(db, requested_placements=len(docs))
        served += len(docs)


def run_requested(db, store, *, sealer=None) -> dict:
    """What the doorbell job runs: serve the placement requests under the lease, until none is left. When
    another run holds the lease, that run serves them: run_once serves requests first and looks again after
    releasing, so a request is never left for the next periodic pass."""
    served = 0
    while db.placement_wakeups.find_one({}, {"_id": 1}) is not None:
        token = lease(db)
        if token is None:
            return {"served": served, "skipped": "another placement run holds the lease; it serves them"}
        try:
            served += serve_requests(db, store, sealer=sealer)
        finally:
            release(db, token)
    return {"served": served}


def run_once(db, store, *, sealer=None) -> dict:
    """Requests, events, policy changes, then repair: what the periodic job (tasks.py) and POST …/storage/repair
    run."""
    token = lease(db)
    if token is None:
        return {"skipped": "another placement run holds the lease"}
    try:
        requested = serve_requests(db, store, sealer=sealer)
        backfill(db)
        handled = drain_events(db, store, sealer=sealer)
        requested += serve_requests(db, store, sealer=sealer)
        placed = drain_policy_changes(db, store, sealer=sealer)
        states = repair(db, store, sealer=sealer)
        db.storage_stats.update_one({"_id": "totals"}, {"$set": {"last_repair_at": now_ms()}}, upsert=True)
    finally:
        release(db, token)
    requested += run_requested(db, store, sealer=sealer)["served"]  # asked for while we held the lease
    return {"requested": requested, "events": handled, "files_replaced": placed, "blocks": states}


def summary(db, store, *, check_stores: bool = True) -> dict:
    """Progress and lag: what the admin API and /metrics show."""
    by_state = {d["_id"]: d["n"] for d in db.block_placements.aggregate(
        [{"$group": {"_id": "$state", "n": {"$sum": 1}}}])}
    oldest = db.block_placements.find_one({"short_since": {"$ne": None}}, {"short_since": 1},
                                          sort=[("short_since", ASCENDING)])
    now = now_ms()
    lag = (now - _aware(oldest["short_since"])).total_seconds() if oldest else 0.0
    totals = db.storage_stats.find_one({"_id": "totals"}) or {}
    totals.pop("_id", None)
    stores = store.status() if check_stores else [{"name": n, "healthy": store.healthy(n)} for n in store.names]
    return {"stores": stores,
            "blocks": {s: by_state.get(s, 0) for s in ("ok", "degraded", "lost", "new", "unwanted")},
            "dirty": db.block_placements.count_documents({"dirty": True}),
            "backlog": {"events": events.backlog(db, CONSUMER),
                        "policy_changes": db.policy_changes.count_documents({}),
                        "requests": db.placement_wakeups.count_documents({})},
            "lag_seconds": round(lag, 3), "totals": {k: _plain(v) for k, v in totals.items()}}


def _aware(value):
    from runtime.ids import as_utc

    return as_utc(value)


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def metrics_text(db, store) -> str:
    """Prometheus lines for /metrics (read from the placement documents; no store is contacted)."""
    info = summary(db, store, check_stores=False)
    lines = ["# HELP pcloud_storage_blocks Blocks by placement state (ok, degraded, lost, new, unwanted)",
             "# TYPE pcloud_storage_blocks gauge"]
    lines += [f'pcloud_storage_blocks{{state="{s}"}} {n}' for s, n in info["blocks"].items()]
    lines += ["# HELP pcloud_storage_repair_lag_seconds Age of the oldest block below its policy",
              "# TYPE pcloud_storage_repair_lag_seconds gauge",
              f"pcloud_storage_repair_lag_seconds {info['lag_seconds']}",
              "# HELP pcloud_storage_placement_backlog Work the placement worker has not done yet",
              "# TYPE pcloud_storage_placement_backlog gauge",
              f'pcloud_storage_placement_backlog{{kind="events"}} {info["backlog"]["events"]}',
              f'pcloud_storage_placement_backlog{{kind="policy_changes"}} {info["backlog"]["policy_changes"]}',
              f'pcloud_storage_placement_backlog{{kind="requests"}} {info["backlog"]["requests"]}',
              f'pcloud_storage_placement_backlog{{kind="dirty_blocks"}} {info["dirty"]}',
              "# HELP pcloud_storage_store_up Whether a named store answered lately",
              "# TYPE pcloud_storage_store_up gauge"]
    lines += [f'pcloud_storage_store_up{{store="{s["name"]}"}} {int(s["healthy"])}' for s in info["stores"]]
    lines += ["# HELP pcloud_storage_events_total Repair and scrub work done",
              "# TYPE pcloud_storage_events_total counter"]
    for key in ("copies", "bytes_copied", "trims", "scrubbed_blocks", "scrubbed_bytes", "scrub_corrupt",
                "scrub_missing", "corrupt_reads", "ack_fallbacks", "requested_placements"):
        lines.append(f'pcloud_storage_events_total{{kind="{key}"}} {int(info["totals"].get(key, 0))}')
    return "\n".join(lines) + "\n"
