"""Events recorded in the write's own transaction: the outbox (push) and the event log (CONTRACT §8).

Outbox (`emit`, `claim_pending`, `mark_done`, `release`): a relay (push/relay.py) carries pending events to rq.
Nothing is lost when a process dies between the write and the work, and nothing is published for a write that
rolled back. Push still rides it this session.

Event log (`append`, consumers: `claim`/`ack`/`hand_back`/`extend`, `Waker`, `run_consumer`, `set_state`,
`list_events`): the one log graph, files and devices append to; see the design notes above `CONSUMERS`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from runtime.changes import Doorbell
from runtime.ids import new_id, utcnow
from runtime.mongo import register_indexes
from runtime.scheduler import Periodic

log = logging.getLogger(__name__)


@register_indexes
def _indexes(db) -> None:
    db.outbox.create_index([("status", ASCENDING), ("created_at", ASCENDING)])
    db.outbox.create_index([("status", ASCENDING), ("done_at", ASCENDING)])  # purge_delivered


def emit(db, type: str, user_id: str | None, payload: dict, session=None) -> str:
    event_id = new_id()
    try:
        db.outbox.insert_one(
            {"_id": event_id, "type": type, "user_id": user_id, "payload": payload, "created_at": utcnow(),
             "status": "pending", "attempts": 0},
            session=session,
        )
    except DuplicateKeyError:
        if session is not None:
            raise
        # A retried write whose first attempt had landed: the event is recorded once, which is what we want.
    return event_id


def emit_many(db, items: list[tuple[str, str | None, dict]], session=None, now: datetime | None = None) -> list[str]:
    """Several `(type, user_id, payload)` events in one round trip, inside the caller's transaction."""
    now = now or utcnow()
    docs = [{"_id": new_id(), "type": type_, "user_id": user_id, "payload": payload, "created_at": now,
             "status": "pending", "attempts": 0} for type_, user_id, payload in items]
    if docs:
        db.outbox.insert_many(docs, session=session)
    return [d["_id"] for d in docs]


def claim_batch(db, types: list[str], limit: int, stale_after: timedelta, now: datetime | None = None) -> list[dict]:
    """Claim up to `limit` events of `types` in three round trips (claim_pending takes one per event): pending,
    or claimed by a relay that died `stale_after` ago; oldest first."""
    now = now or utcnow()
    query = {"type": {"$in": list(types)},
             "$or": [{"status": "pending"}, {"status": "claimed", "claimed_at": {"$lt": now - stale_after}}]}
    ids = [d["_id"] for d in db.outbox.find(query, {"_id": 1}).sort("created_at", ASCENDING).limit(limit)]
    if not ids:
        return []
    token = new_id()
    db.outbox.update_many({"_id": {"$in": ids}, **query},
                          {"$set": {"status": "claimed", "claimed_at": now, "claim": token}, "$inc": {"attempts": 1}})
    return list(db.outbox.find({"_id": {"$in": ids}, "claim": token}).sort("created_at", ASCENDING))


def claim_pending(db, limit: int = 100, stale_after: timedelta = timedelta(minutes=5)) -> list[dict]:
    """Claim up to `limit` events; events claimed long ago by a relay that died are claimed again."""
    now = utcnow()
    claimed = []
    query = {"$or": [{"status": "pending"}, {"status": "claimed", "claimed_at": {"$lt": now - stale_after}}]}
    for _ in range(limit):
        doc = db.outbox.find_one_and_update(
            query, {"$set": {"status": "claimed", "claimed_at": now}, "$inc": {"attempts": 1}},
            sort=[("created_at", ASCENDING)], return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            break
        claimed.append(doc)
    return claimed


def mark_done(db, event_ids: list[str]) -> None:
    if event_ids:
        db.outbox.update_many({"_id": {"$in": event_ids}}, {"$set": {"status": "done", "done_at": utcnow()}})


def release(db, event_ids: list[str]) -> None:
    """Hand events back (the relay could not enqueue them)."""
    if event_ids:
        db.outbox.update_many({"_id": {"$in": event_ids}}, {"$set": {"status": "pending"}})


OUTBOX_KEEP_DONE = timedelta(days=1)  # delivered events stay this long (debugging), then the sweep drops them


RETIRED_TYPES = ("sso.session_ended",)  # once written, never consumed: older databases still hold them pending


def purge_delivered(db, keep: timedelta = OUTBOX_KEEP_DONE, now: datetime | None = None) -> int:
    """Delete outbox events delivered (`done`) more than `keep` ago, and events of types nothing will ever
    carry (RETIRED_TYPES); pending and claimed events of live types always stay."""
    cutoff = (now or utcnow()) - keep
    removed = db.outbox.delete_many({"status": "done", "done_at": {"$lt": cutoff}}).deleted_count
    return removed + db.outbox.delete_many({"type": {"$in": list(RETIRED_TYPES)}}).deleted_count


def outbox_overview(db, status: str | None = None, limit: int = 20) -> tuple[dict[str, int], list[dict]]:
    """Counts per status and the oldest events (of one status, or any): what `pcloud outbox list` shows."""
    counts = {d["_id"]: d["n"] for d in db.outbox.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
    query = {"status": status} if status else {}
    oldest = list(db.outbox.find(query, {"payload": 0}).sort("created_at", ASCENDING).limit(limit))
    return counts, oldest


def purge_outbox_job() -> int:
    """Periodic job (PERIODIC below): the outbox does not grow with every write ever made."""
    from runtime.clients import process_clients

    return purge_delivered(process_clients().db)


# ---------------------------------------------------------------------------------------------------------------
# The event log (CONTRACT §8): collection `events`, owned by this module.
#
# Design, and why:
# * `append` writes the event inside the caller's transaction, so an event exists iff its write committed.
# * `seq` is per owner, not global: a counter document per owner (`event_seqs`) is `$inc`-ed in the same
#   transaction. A single global counter would be a write-conflict hot spot every mutation of every user fights
#   over; per owner, only one user's own concurrent writes contend (and retry). Because the counter document is
#   written by every transaction that takes a number, two transactions of one owner cannot both commit with the
#   counter unseen by the other: the second conflicts and retries after the first committed. So, per owner, a
#   lower seq is always visible before a higher one, and a reader paging `after=SEQ` (GET /events/v1) never
#   skips an event that commits late.
# * Consumers do not read by seq at all (there is no global order to read by). Each event records, at append, the
#   named consumers that must see it (`pending`, from CONSUMERS by type prefix). A consumer claims pending events
#   with a lease (`claims.<name>`), handles them, and acks (removes itself from `pending`). Whatever commits late
#   is simply still pending when it appears, so nothing is skipped; a consumer killed mid-batch loses its lease
#   and the events are claimed again (at least once). Handlers must be idempotent: per subject, compare the
#   event's (owner, seq) with what was last applied (the search indexer does exactly that).
# * Wake on insert: `Waker` keeps a change stream open on `events` for inserts that name the consumer, so a
#   consumer sleeps until a commit, not for a fixed poll interval. The stream is only a doorbell: the state is in
#   the documents, so a missed notification costs at most `idle_seconds` (the backstop that also picks up
#   expired leases).
# * `state` (new | in_progress | done) belongs to the app event processor (`set_state`); consumers' own progress
#   is `pending`/`claims`, so one consumer's state never hides an event from another.
# * Retention: `sweep_expired` (a periodic job) deletes events older than PCLOUD_EVENT_RETENTION_DAYS.
# Push still rides the outbox above (emit/claim_pending); it can become a consumer here by adding its name.
# ---------------------------------------------------------------------------------------------------------------

# Consumer name -> event type prefixes it must see ("" = every event). A new consumer is a line here; events
# appended before its line shipped are not pending for it (the app processor replays from the log for those).
CONSUMERS: dict[str, tuple[str, ...]] = {
    "search": ("graph.node.", "files.node."),
    "placement": ("files.node.",),  # functions/files/replication.py: blocks to their folder's replica policy
    "apps": ("",),
    # the notifier (functions/notify): device status, pairing results, dead executions, storage, its own webhooks
    "notify": ("devices.device.", "pairing.session.", "apps.execution.", "storage.volume.", "notify.webhook."),
}
EVENT_STATES = ("new", "in_progress", "done")
DEFAULT_LEASE_SECONDS = 60.0
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*){2}$")


@register_indexes
def _event_indexes(db) -> None:
    db.events.create_index([("owner", ASCENDING), ("seq", ASCENDING)], unique=True)
    db.events.create_index([("pending", ASCENDING), ("time", ASCENDING)])
    db.events.create_index([("time", ASCENDING)])
    db.events.create_index([("owner", ASCENDING), ("subject", ASCENDING), ("seq", ASCENDING)])


_counters_seen: set[tuple[str, str]] = set()


def _ensure_counter(db, owner: str) -> None:
    """Create the owner's counter outside the caller's transaction, once per process: two first events of one
    owner racing to upsert it inside transactions could fail with a duplicate key (not a retryable conflict)."""
    key = (db.name, owner)
    if key in _counters_seen:
        return
    try:
        db.event_seqs.update_one({"_id": owner}, {"$setOnInsert": {"seq": 0}}, upsert=True)
    except DuplicateKeyError:
        pass  # created meanwhile by another process: what we wanted
    if len(_counters_seen) > 100_000:
        _counters_seen.clear()
    _counters_seen.add(key)


def consumers_for(type: str) -> list[str]:
    return [name for name, prefixes in CONSUMERS.items() if any(type.startswith(p) for p in prefixes)]


def append(db, *, owner: str, type: str, subject: str, data: dict, node_type: str | None = None,
           cause: dict | None = None, session=None) -> dict:
    """Record an event in the caller's transaction (`session`); returns the event as the API shows it.

    Without a session the append runs in a transaction of its own (seq and insert stay atomic).
    """
    if not _TYPE_RE.match(type or ""):
        raise ValueError(f"event type must be three dotted lowercase segments, got {type!r}")
    if not owner or not isinstance(data, dict):
        raise ValueError("an event needs an owner and a data dict")
    if session is None:
        from runtime.mongo import transaction

        return transaction(db.client, lambda s: append(db, owner=owner, type=type, subject=subject, data=data,
                                                        node_type=node_type, cause=cause, session=s))
    _ensure_counter(db, owner)
    counter = db.event_seqs.find_one_and_update({"_id": owner}, {"$inc": {"seq": 1}}, upsert=True,
                                                return_document=ReturnDocument.AFTER, session=session)
    doc = {"_id": new_id(), "seq": counter["seq"], "type": type, "subject": subject, "owner": owner,
           "time": utcnow(), "state": "new", "data": data, "pending": consumers_for(type)}
    if node_type:
        doc["node_type"] = node_type
    if cause:
        doc["cause"] = cause
    db.events.insert_one(doc, session=session)
    return public(doc)


def append_many(db, *, owner: str, items: list[dict], session) -> list[dict]:
    """Several events of one owner in one go (a trashed folder and its subtree): one `$inc` for the seq block,
    one insert. Each item has the keyword arguments of `append` (type, subject, data, node_type?, cause?)."""
    if not items:
        return []
    for item in items:
        if not _TYPE_RE.match(item.get("type") or ""):
            raise ValueError(f"event type must be three dotted lowercase segments, got {item.get('type')!r}")
    if not owner:
        raise ValueError("an event needs an owner")
    _ensure_counter(db, owner)
    counter = db.event_seqs.find_one_and_update({"_id": owner}, {"$inc": {"seq": len(items)}}, upsert=True,
                                                return_document=ReturnDocument.AFTER, session=session)
    first, now, docs = counter["seq"] - len(items) + 1, utcnow(), []
    for i, item in enumerate(items):
        doc = {"_id": new_id(), "seq": first + i, "type": item["type"], "subject": item["subject"], "owner": owner,
               "time": now, "state": "new", "data": item.get("data") or {}, "pending": consumers_for(item["type"])}
        if item.get("node_type"):
            doc["node_type"] = item["node_type"]
        if item.get("cause"):
            doc["cause"] = item["cause"]
        docs.append(doc)
    db.events.insert_many(docs, session=session)
    return [public(d) for d in docs]

def public(doc: dict) -> dict:
    """The API shape of an event (CONTRACT §8): bookkeeping fields dropped, times as ISO strings."""
    out = {"id": doc["_id"], "seq": doc["seq"], "type": doc["type"], "subject": doc["subject"]}
    if doc.get("node_type"):
        out["node_type"] = doc["node_type"]
    out.update(owner=doc["owner"], time=_jsonable(doc["time"]), state=doc.get("state", "new"))
    if doc.get("cause"):
        out["cause"] = _jsonable(doc["cause"])
    out["data"] = _jsonable(doc.get("data") or {})
    return out


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def type_filter(prefix: str | None) -> dict:
    """`graph.node` matches `graph.node.created` and `graph.node` itself, never `graph.nodes.x`."""
    if not prefix:
        return {}
    base = prefix.rstrip(".")
    return {"type": {"$regex": f"^{re.escape(base)}(\\.|$)"}}


def list_events(db, owner: str, *, after: int = 0, type_prefix: str | None = None,
                limit: int = 100) -> tuple[list[dict], str | None]:
    """The owner's events with seq > after, oldest first; next_cursor is the last seq when the page is full."""
    query = {"owner": owner, "seq": {"$gt": after}, **type_filter(type_prefix)}
    docs = list(db.events.find(query).sort("seq", ASCENDING).limit(limit))
    items = [public(d) for d in docs]
    return items, (str(docs[-1]["seq"]) if len(docs) == limit else None)


def current_seq(db, owner: str) -> int:
    """The owner's last allocated seq (0 before the first event): a rebuild's snapshot mark."""
    doc = db.event_seqs.find_one({"_id": owner})
    return int(doc["seq"]) if doc else 0


def oldest_seq(db, owner: str) -> int | None:
    """The owner's lowest seq the log still keeps (None when it keeps none): where a resume can start."""
    doc = db.events.find_one({"owner": owner}, {"seq": 1}, sort=[("seq", ASCENDING)])
    return int(doc["seq"]) if doc else None


def iter_events(db, type_prefix: str | None = None, batch: int = 1000):
    """Every stored event (of a type prefix) in (owner, seq) order, as stored: what a rebuild replays."""
    last_owner, last_seq = "", 0
    base = type_filter(type_prefix)
    while True:
        query = {**base, "$or": [{"owner": {"$gt": last_owner}}, {"owner": last_owner, "seq": {"$gt": last_seq}}]}
        docs = list(db.events.find(query).sort([("owner", ASCENDING), ("seq", ASCENDING)]).limit(batch))
        if not docs:
            return
        yield from docs
        last_owner, last_seq = docs[-1]["owner"], docs[-1]["seq"]


def count_events(db, type_prefix: str | None = None) -> int:
    return db.events.count_documents(type_filter(type_prefix))

def get_event(db, event_id: str, owner: str | None = None) -> dict | None:
    query = {"_id": event_id} if owner is None else {"_id": event_id, "owner": owner}
    doc = db.events.find_one(query)
    return public(doc) if doc else None


def set_state(db, event_ids: str | list[str], state: str, session=None) -> int:
    """The app processor's view of an event: new → in_progress → done (CONTRACT §8). Returns events changed."""
    if state not in EVENT_STATES:
        raise ValueError(f"event state must be one of {EVENT_STATES}, got {state!r}")
    ids = [event_ids] if isinstance(event_ids, str) else list(event_ids)
    if not ids:
        return 0
    result = db.events.update_many({"_id": {"$in": ids}}, {"$set": {"state": state}}, session=session)
    return result.modified_count


def _check_consumer(consumer: str) -> None:
    if consumer not in CONSUMERS:
        raise ValueError(f"unknown event consumer {consumer!r}; add it to runtime.events.CONSUMERS")


def _claimable(consumer: str, now: datetime) -> dict:
    return {"pending": consumer,
            "$or": [{f"claims.{consumer}": {"$exists": False}}, {f"claims.{consumer}.until": {"$lt": now}}]}


def claim(db, consumer: str, *, limit: int = 100, lease_seconds: float = DEFAULT_LEASE_SECONDS,
          types: tuple[str, ...] | list[str] | None = None) -> list[dict]:
    """Lease up to `limit` events pending for `consumer` (oldest first), in three round trips.

    Returned as stored (`_id`, `seq`, …, plus `attempts` = deliveries to this consumer, 1 the first time).
    Concurrent claimers of one consumer get disjoint batches: the lease is set only where none is live.
    Ack with `ack`, hand back with `hand_back`, keep with `extend`; an unacked lease runs out and the event is
    claimed again.
    """
    _check_consumer(consumer)
    now = utcnow()
    query = _claimable(consumer, now)
    if types:
        query["type"] = {"$in": list(types)}
    ids = [d["_id"] for d in db.events.find(query, {"_id": 1}).sort("time", ASCENDING).limit(limit)]
    if not ids:
        return []
    token = new_id()
    db.events.update_many({"_id": {"$in": ids}, **query},
                          {"$set": {f"claims.{consumer}": {"token": token,
                                                           "until": now + timedelta(seconds=lease_seconds)}},
                           "$inc": {f"attempts.{consumer}": 1}})
    docs = list(db.events.find({"_id": {"$in": ids}, f"claims.{consumer}.token": token}))
    for doc in docs:
        doc["attempts"] = (doc.get("attempts") or {}).get(consumer, 1)
    docs.sort(key=lambda d: (d["owner"], d["seq"]))
    return docs


def ack(db, consumer: str, event_ids: list[str]) -> None:
    """Done for this consumer: it never sees these events again (other consumers are unaffected)."""
    _check_consumer(consumer)
    if event_ids:
        db.events.update_many({"_id": {"$in": list(event_ids)}},
                              {"$pull": {"pending": consumer}, "$unset": {f"claims.{consumer}": ""}})


def hand_back(db, consumer: str, event_ids: list[str], delay_seconds: float = 0.0) -> None:
    """Hand events back: claimable again after `delay_seconds` (a retry backoff)."""
    _check_consumer(consumer)
    if event_ids:
        until = utcnow() + timedelta(seconds=delay_seconds)
        db.events.update_many({"_id": {"$in": list(event_ids)}, "pending": consumer},
                              {"$set": {f"claims.{consumer}.until": until, f"claims.{consumer}.token": None}})


def extend(db, consumer: str, event_ids: list[str], lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
    """Keep a lease alive while a long batch is still being worked on."""
    _check_consumer(consumer)
    if event_ids:
        db.events.update_many({"_id": {"$in": list(event_ids)}, "pending": consumer},
                              {"$set": {f"claims.{consumer}.until": utcnow() + timedelta(seconds=lease_seconds)}})


def backlog(db, consumer: str) -> int:
    """Events still pending for `consumer` (leased or not): what a health check or a benchmark waits on."""
    _check_consumer(consumer)
    return db.events.count_documents({"pending": consumer})


class Waker(Doorbell):
    """Wakes a consumer when an event pending for it is inserted (runtime/changes.py). Open it before the first
    `claim` so nothing committed in between is missed."""

    def __init__(self, db, consumer: str, await_ms: int = 200):
        _check_consumer(consumer)
        super().__init__(db.events, {"pending": consumer}, consumer, await_ms=await_ms)


def run_consumer(db, consumer: str, handle: Callable[[list[dict]], None], stop: threading.Event, *,
                 batch: int = 200, lease_seconds: float = DEFAULT_LEASE_SECONDS, idle_seconds: float = 5.0,
                 retry_seconds: float = 5.0) -> None:
    """The consumer loop: claim a batch, `handle(events)`, ack; sleep until an insert (or `idle_seconds`).

    `handle` gets the batch in (owner, seq) order and must be idempotent (at least once). When it raises, the
    batch is released for `retry_seconds` and retried (logged with the attempt count).
    """
    waker = Waker(db, consumer)
    try:
        while not stop.is_set():
            try:
                docs = claim(db, consumer, limit=batch, lease_seconds=lease_seconds)
            except PyMongoError as exc:
                log.warning("%s: claiming events failed: %s", consumer, exc)
                stop.wait(retry_seconds)
                continue
            if not docs:
                waker.wait(idle_seconds)
                continue
            ids = [d["_id"] for d in docs]
            try:
                handle(docs)
            except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the consumer; it is retried
                log.warning("%s: handling %d events failed (attempt %d): %s", consumer, len(docs),
                            max(d["attempts"] for d in docs), exc)
                hand_back(db, consumer, ids, delay_seconds=retry_seconds)
                continue
            ack(db, consumer, ids)
    finally:
        waker.close()


def sweep_expired(db, retention_days: int, now: datetime | None = None) -> int:
    """Delete events older than the retention period (and nothing newer); returns how many."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    return db.events.delete_many({"time": {"$lt": cutoff}}).deleted_count


def sweep_job() -> int:
    """Periodic job (runtime/scheduler.py): PCLOUD_EVENT_RETENTION_DAYS applied to the log."""
    from runtime.clients import process_clients

    clients = process_clients()
    return sweep_expired(clients.db, clients.settings.event_retention_days)


PERIODIC = [
    Periodic(sweep_job, every=3600),  # events older than PCLOUD_EVENT_RETENTION_DAYS
    Periodic(purge_outbox_job, every=3600),  # outbox events delivered more than a day ago
]
