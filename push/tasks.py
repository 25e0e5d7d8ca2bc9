"""rq jobs that send pushes, and the sweeper that keeps MongoDB (not Redis) the record of what is owed.

Each delivery in `push_deliveries` is `queued` until a worker confirms it `sent` or `failed` (with a reason).
A queued delivery carries `lease_until` (never before `next_attempt_at`): while a job for it may still be in
Redis, or while it waits for its retry time, it is left alone; once that is over (worker SIGKILLed mid-batch,
Redis restarted empty, retry due) the sweeper enqueues it again. Transient FCM errors put it back to `queued`
with `next_attempt_at` after an exponential backoff with jitter that honours Retry-After, so no worker ever
sleeps waiting for FCM. Sending is at least once, and duplicates are kept rare: a job first asks MongoDB
which of its deliveries are still owed (a job sent again after a Redis flush, or after its lease ran out,
skips what was sent meanwhile), and the sweeper tells a job that died with its worker (runtime/liveness.py)
or vanished with Redis from one still working, so its messages go again within seconds, not after the lease.
"""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import UpdateOne
from rq.job import JobStatus

from push import registry
from push.messages import PushMessage, PushSender
from push.service import SYNC_GAP_MS, assign_jobs, message_data
from runtime import jobs, liveness
from runtime.ids import as_utc, utcnow

log = logging.getLogger(__name__)

QUEUE = "push"
MAX_ATTEMPTS = 12  # sends FCM answered with a transient error
MAX_RESENDS = 30  # sweeper re-enqueues (retries and lost jobs) before a delivery is given up
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 900.0
DEFAULT_LEASE = timedelta(seconds=120)
# a job the sweeper cannot find in Redis is lost only this long after it was handed out (the relay records
# deliveries a moment before it enqueues their job)
ORPHAN_GRACE = timedelta(seconds=3)
ORPHAN_CHECK_EVERY = timedelta(seconds=2)
FINISHED_JOB_TTL = 60  # seconds a finished job stays visible, so its records, still being written, are not resent


@dataclass
class PushContext:
    """What a worker process needs: clients, the sender, and how long an enqueued job holds its deliveries."""

    clients: object
    sender: PushSender
    lease: timedelta = DEFAULT_LEASE


_context: PushContext | None = None
_context_lock = threading.Lock()


def configure(context: PushContext | None) -> None:
    """Set the process's push context (tests and benchmarks; processes otherwise build it from settings)."""
    global _context
    with _context_lock:
        _context = context


def context() -> PushContext:
    global _context
    with _context_lock:
        if _context is None:
            from push.senders import make_sender  # firebase-admin: only where messages are sent
            from runtime.clients import process_clients

            clients = process_clients()
            _context = PushContext(clients, make_sender(clients.settings))
        return _context


def backoff_seconds(attempts: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter; never earlier than the provider's Retry-After."""
    rng = rng or random
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    delay = rng.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after + rng.uniform(0, min(5.0, retry_after * 0.1 + 0.5)))
    return delay


def job_message(doc: dict) -> dict:
    """A delivery as rq job arguments (JSON-safe): the worker sends without reading MongoDB first."""
    return {
        "id": doc["_id"], "token": doc["token"], "kind": doc["kind"], "data": message_data(doc),
        "notification": doc.get("notification"), "collapse_key": doc.get("collapse_key"),
        "ttl": doc.get("ttl", 3600), "priority": doc.get("priority", "normal"), "device_id": doc.get("device_id"),
        "attempts": doc.get("attempts", 0), "created_at": as_utc(doc["created_at"]).timestamp(),
    }


def enqueue(clients, docs: list[dict]) -> int:
    """Put deliveries on the rq queue, one job per `job` id they were given (≤ JOB_BATCH each), in one round trip."""
    if not docs:
        return 0
    groups: dict[str, list[dict]] = {}
    for doc in docs:
        groups.setdefault(doc["job"], []).append(doc)
    queue = clients.queue(QUEUE)
    datas = [queue.prepare_data(send_messages, args=([job_message(d) for d in group],), job_id=job_id,
                                timeout=300, result_ttl=FINISHED_JOB_TTL, failure_ttl=86400)
             for job_id, group in groups.items()]
    queue.enqueue_many(datas)
    return len(datas)


class RecordWriter:
    """Writes a batch's delivery records on one background thread while the next batch is being sent.

    At most one write is in flight (the next batch waits for it), so records trail sends by one batch at
    most. A process killed before a write lands leaves those deliveries `queued`: their lease runs out and
    they are sent again (at least once).
    """

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-records")
        self._pending: Future | None = None
        self._lock = threading.Lock()
        self._unrecorded: frozenset[str] = frozenset()  # sent by this process, record not yet written

    def submit(self, fn, sent_ids=frozenset()) -> None:
        with self._lock:
            self._wait_locked()
            self._unrecorded = frozenset(sent_ids)
            self._pending = self._executor.submit(fn)

    def unrecorded(self) -> frozenset[str]:
        """Deliveries this process sent whose `sent` record is still being written."""
        with self._lock:
            return self._unrecorded if self._pending is not None and not self._pending.done() else frozenset()

    def wait(self) -> None:
        with self._lock:
            self._wait_locked()

    def _wait_locked(self) -> None:
        if self._pending is not None:
            try:
                self._pending.result()
            except Exception as exc:  # noqa: BLE001 - the deliveries stay queued; the sweeper sends them again
                log.warning("recording push outcomes failed (they will be sent again): %s", exc)
            self._pending = None
            self._unrecorded = frozenset()


_records = RecordWriter()


def flush() -> None:
    """Wait until the outcomes of every batch sent so far are in MongoDB."""
    _records.wait()


def send_messages(messages: list[dict]) -> dict:
    """rq job: send one batch; its outcomes are recorded while the next job sends. Returns counts (for logs)."""
    return deliver(context(), messages, overlap=True)


def still_owed(db, messages: list[dict]) -> list[dict]:
    """The messages whose delivery MongoDB still has `queued` and that this process has not just sent.

    One indexed read per batch. A job sent again (a lost job's deliveries re-enqueued by the sweeper, a Redis
    flush, two jobs for one delivery) then skips what another job confirmed meanwhile; a delivery skipped
    here that is still queued stays with the sweeper, so nothing is lost.
    """
    if not messages:
        return messages
    queued = {d["_id"] for d in db.push_deliveries.find(
        {"_id": {"$in": [m["id"] for m in messages]}, "status": "queued"}, {"_id": 1})}
    unrecorded = _records.unrecorded()
    return [m for m in messages if m["id"] in queued and m["id"] not in unrecorded]


def deliver(ctx: PushContext, messages: list[dict], now: datetime | None = None, overlap: bool = False) -> dict:
    db, redis, keys = ctx.clients.db, ctx.clients.redis, ctx.clients.redis_keys
    now = now or utcnow()
    updates: list[UpdateOne] = []
    counts = {"sent": 0, "failed": 0, "retry": 0, "postponed": 0, "skipped": 0}
    to_send: list[dict] = []
    owed = still_owed(db, messages)
    counts["skipped"] = len(messages) - len(owed)
    messages = owed

    # FCM does not keep order inside a batch: of several messages to one token with one collapse key
    # (pairing waiting→done, device on→off), send only the newest
    newest: dict[tuple, str] = {}
    for m in messages:
        if m.get("collapse_key"):
            newest[(m["token"], m["collapse_key"])] = m["id"]
    superseded = {m["id"] for m in messages
                  if m.get("collapse_key") and newest[(m["token"], m["collapse_key"])] != m["id"]}
    for delivery_id in superseded:
        updates.append(_finish(delivery_id, "failed", now,
                               "superseded: a newer message with the same collapse key went instead"))
    counts["failed"] += len(superseded)
    messages = [m for m in messages if m["id"] not in superseded]

    # sync tickles: a hard gate at send time too, so two slots sent late/early never land < 2 s apart
    syncs = [m for m in messages if m["kind"] == "sync" and m.get("device_id")]
    gates = {}
    if syncs:
        pipe = redis.pipeline(transaction=False)
        for m in syncs:
            pipe.set(keys.k("push", "sync-sent", m["device_id"]), m["id"], nx=True, px=SYNC_GAP_MS)
        gates = {m["id"]: bool(ok) for m, ok in zip(syncs, pipe.execute(), strict=True)}

    for m in messages:
        expires = datetime.fromtimestamp(m["created_at"], tz=now.tzinfo) + timedelta(seconds=m["ttl"])
        if expires <= now:
            updates.append(_finish(m["id"], "failed", now, "expired: its TTL passed before FCM accepted it"))
            counts["failed"] += 1
        elif m["id"] in gates and not gates[m["id"]]:
            wait = redis.pttl(keys.k("push", "sync-sent", m["device_id"]))
            retry_at = now + timedelta(milliseconds=max(wait, 50))
            updates.append(_requeue(m["id"], now, retry_at, "waiting: at most one sync tickle per 2 s", attempt=False))
            counts["postponed"] += 1
        else:
            to_send.append(m)

    results = ctx.sender.send_batch([
        PushMessage(id=m["id"], token=m["token"], kind=m["kind"], data=m["data"],
                    notification=tuple(m["notification"]) if m.get("notification") else None,
                    collapse_key=m.get("collapse_key"), ttl_seconds=int(m["ttl"]), priority=m["priority"])
        for m in to_send
    ])
    by_id = {m["id"]: m for m in to_send}
    dead_tokens = set()
    for r in results:
        m = by_id[r.id]
        attempts = int(m.get("attempts", 0)) + 1
        if r.status == "sent":
            updates.append(UpdateOne({"_id": r.id}, {"$set": {
                "status": "sent", "reason": None, "sent_at": now, "updated_at": now, "provider_id": r.provider_id,
                "lease_until": now}, "$inc": {"attempts": 1}}))
            counts["sent"] += 1
        elif r.status in ("unregistered", "invalid_token"):
            dead_tokens.add(m["token"])
            updates.append(_finish(r.id, "failed", now, f"{r.reason}: token removed from the device"))
            counts["failed"] += 1
        elif r.status == "retry" and attempts < MAX_ATTEMPTS:
            retry_at = now + timedelta(seconds=backoff_seconds(attempts, r.retry_after))
            updates.append(_requeue(r.id, now, retry_at, f"retrying: {r.reason}"))
            counts["retry"] += 1
        else:
            reason = r.reason if r.status == "failed" else f"gave up after {attempts} attempts: {r.reason}"
            updates.append(_finish(r.id, "failed", now, reason))
            counts["failed"] += 1

    def record() -> None:
        if updates:
            db.push_deliveries.bulk_write(updates, ordered=False)
        pruned = sum(registry.prune_token(db, token) for token in dead_tokens)
        if counts["failed"] or counts["retry"]:
            log.info("push batch: %s, %d tokens pruned", counts, pruned)

    if overlap:
        _records.submit(record, {r.id for r in results if r.status == "sent"})
    else:
        flush()
        record()
    return counts


def _finish(delivery_id: str, status: str, now: datetime, reason: str) -> UpdateOne:
    # never downgrade a delivery an earlier (duplicate) job already confirmed sent
    return UpdateOne({"_id": delivery_id, "status": "queued"}, {"$set": {
        "status": status, "reason": reason, "updated_at": now, "lease_until": now}, "$inc": {"attempts": 1}})


def _requeue(delivery_id: str, now: datetime, retry_at: datetime, reason: str, attempt: bool = True) -> UpdateOne:
    change = {"$set": {"status": "queued", "reason": reason, "updated_at": now, "next_attempt_at": retry_at,
                       "lease_until": retry_at}}
    if attempt:
        change["$inc"] = {"attempts": 1}
    return UpdateOne({"_id": delivery_id, "status": "queued"}, change)


def sweep(clients, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None, limit: int = 1000) -> int:
    """Enqueue the queued deliveries that are due (lease or retry wait over) and whose job is not still
    waiting in Redis (a backlog is not a loss). Returns how many it enqueued."""
    now = now or utcnow()
    _release_orphans(clients, lease, now)
    query = {"status": "queued", "lease_until": {"$lte": now}}
    docs = list(clients.db.push_deliveries.find(query).sort("lease_until", 1).limit(limit))
    if not docs:
        return 0
    waiting = _jobs_still_pending(clients, {d["job"] for d in docs if d.get("job")}, lease, now)
    for job_id in waiting:
        clients.db.push_deliveries.update_many({"job": job_id, "status": "queued"},
                                               {"$set": {"lease_until": now + lease}})
    docs = [d for d in docs if d.get("job") not in waiting]
    # a delivery whose job keeps dying (a poison message) must not circle for ever
    hopeless = [d["_id"] for d in docs if d.get("resends", 0) >= MAX_RESENDS]
    if hopeless:
        reason = f"gave up: no worker confirmed it in {MAX_RESENDS} tries"
        clients.db.push_deliveries.update_many({"_id": {"$in": hopeless}, "status": "queued"},
                                               {"$set": {"status": "failed", "updated_at": now, "reason": reason}})
        docs = [d for d in docs if d.get("resends", 0) < MAX_RESENDS]
    if not docs:
        return 0
    assign_jobs(docs)
    clients.db.push_deliveries.bulk_write([
        UpdateOne({"_id": d["_id"], "status": "queued"},
                  {"$set": {"lease_until": now + lease, "job": d["job"]}, "$inc": {"resends": 1}}) for d in docs
    ], ordered=False)
    enqueue(clients, docs)
    return len(docs)


_last_orphan_check: dict[str, datetime] = {}  # database name -> when the sweeper last looked for lost jobs


def _release_orphans(clients, lease: timedelta, now: datetime) -> int:
    """End the lease of deliveries whose job is gone before the lease would have: the job vanished from
    Redis (flushed, restarted empty) or died with its worker. Returns how many deliveries it released.
    At most once per ORPHAN_CHECK_EVERY: it reads every in-flight delivery's job id, a big set in a backlog."""
    last = _last_orphan_check.get(clients.db.name)
    if last is not None and timedelta(0) <= now - last < ORPHAN_CHECK_EVERY:
        return 0
    _last_orphan_check[clients.db.name] = now
    handed_out_before = now - ORPHAN_GRACE
    leased = {"status": "queued", "next_attempt_at": {"$lte": now},
              "lease_until": {"$gt": now, "$lte": handed_out_before + lease}}
    job_ids = {j for j in clients.db.push_deliveries.distinct("job", leased) if j}
    if not job_ids:
        return 0
    orphans = job_ids - _jobs_still_pending(clients, job_ids, lease, now, finished_count=True)
    if not orphans:
        return 0
    released = clients.db.push_deliveries.update_many({**leased, "job": {"$in": sorted(orphans)}},
                                                      {"$set": {"lease_until": now}}).modified_count
    log.info("push sweep: %d deliveries of %d lost jobs go again now", released, len(orphans))
    return released


def _jobs_still_pending(clients, job_ids: set[str], lease: timedelta, now: datetime,
                        finished_count: bool = False) -> set[str]:
    """Jobs queued in Redis, or started less than a lease ago by a worker that is still alive (a SIGKILLed
    worker's job stays 'started' in rq); with `finished_count`, also jobs that finished (their outcomes are
    recorded, or being recorded)."""
    if not job_ids:
        return set()
    ids = sorted(job_ids)
    pending = set()
    for job_id, job in zip(ids, jobs.fetch_many(ids, clients.redis), strict=True):
        if job is None:
            continue
        status = job.get_status(refresh=False)
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            pending.add(job_id)
        elif status == JobStatus.STARTED and job.started_at and as_utc(job.started_at) > now - lease:
            if liveness.is_alive(clients.redis, clients.redis_keys, job.worker_name) is not False:
                pending.add(job_id)
        elif status == JobStatus.FINISHED and finished_count:
            pending.add(job_id)
    return pending


def next_due(db) -> datetime | None:
    """When the earliest queued delivery's lease or wait ends (one read on the sweeper's index)."""
    doc = db.push_deliveries.find_one({"status": "queued"}, {"lease_until": 1}, sort=[("lease_until", 1)])
    return as_utc(doc["lease_until"]) if doc and doc.get("lease_until") else None


def purge_old(clients, now: datetime | None = None) -> int:
    """Delivery records past `expires_at` (the TTL index does this too where the server supports it)."""
    now = now or utcnow()
    return clients.db.push_deliveries.delete_many({"expires_at": {"$lt": now}}).deleted_count
