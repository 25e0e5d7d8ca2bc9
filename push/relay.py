"""The relay process (`python -m push.relay`): outbox events → push deliveries → rq jobs, plus the sweeper.

Loop: claim pending outbox events, record a delivery per phone (push.service.fan_out), enqueue the due ones,
mark the events done. Between passes the sweeper re-enqueues deliveries whose lease ran out (a worker died,
Redis lost its data) or whose retry time came, purges old delivery records and, hourly, forgets tokens not
refreshed for 270 days. Everything it needs to resume is in MongoDB, so it can be killed at any point.

When idle it sleeps on a change stream of outbox inserts (runtime.changes.outbox_doorbell) and wakes when an event
commits, or when the next queued delivery falls due (a sync tickle's 2-s slot, a retry), whichever is first;
a poll every IDLE_WAIT is only the backstop for a missed notification.

Other event types are handed to their own rq job through EVENT_JOBS (type → "module:function", queue).
The relay claims only the types it carries, so an event type nobody registered stays pending (never lost).
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from datetime import datetime, timedelta

from push import registry, tasks
from push.messages import check_settings
from push.service import PUSH_EVENT_TYPES, fan_out
from runtime import changes, events
from runtime.ids import utcnow

log = logging.getLogger(__name__)

# Outbox event types other functions handle in an rq job: type -> ("module:function", queue name).
# The job receives the event as {"id","type","user_id","payload"}.
EVENT_JOBS: dict[str, tuple[str, str]] = {}

CLAIM_BATCH = 200
STALE_CLAIM = timedelta(minutes=2)
IDLE_WAIT = 1.0  # longest sleep between passes when no insert woke the relay (a missed notification)
SWEEP_EVERY = 0.5  # the sweeper's backstop; a delivery falling due sooner wakes it at its time
SWEEP_MIN_GAP = 0.05  # never sweep more often, whatever falls due
TOKEN_SWEEP_EVERY = 3600.0


def carried_types() -> list[str]:
    return list(PUSH_EVENT_TYPES) + [t for t in EVENT_JOBS if t not in PUSH_EVENT_TYPES]


def claim(db, limit: int = CLAIM_BATCH, now: datetime | None = None) -> list[dict]:
    """Claim up to `limit` events of the types this relay carries (runtime.events.claim_batch)."""
    return events.claim_batch(db, carried_types(), limit, STALE_CLAIM, now)


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def relay_once(clients, lease: timedelta = tasks.DEFAULT_LEASE, limit: int = CLAIM_BATCH) -> int:
    """One pass over the outbox; returns how many events it carried."""
    db = clients.db
    claimed = claim(db, limit)
    if not claimed:
        return 0
    push_events = [e for e in claimed if e["type"] in PUSH_EVENT_TYPES]
    other = [e for e in claimed if e["type"] not in PUSH_EVENT_TYPES]
    try:
        due = fan_out(db, clients.redis, clients.redis_keys, push_events, lease)
        tasks.enqueue(clients, due)
        for event in other:
            handler = EVENT_JOBS.get(event["type"])
            if handler:
                path, queue = handler
                clients.queue(queue).enqueue(path.replace(":", "."), {
                    "id": event["_id"], "type": event["type"], "user_id": event.get("user_id"),
                    "payload": event.get("payload")}, result_ttl=0, failure_ttl=86400)
    except Exception:
        # nothing is lost: deliveries already recorded are idempotent, the events go back to pending
        events.release(db, [e["_id"] for e in claimed])
        raise
    events.mark_done(db, [e["_id"] for e in claimed])
    return len(claimed)


class Relay:
    """The relay loop with its sweeper; `stop()` ends it after the current pass."""

    def __init__(self, clients, lease: timedelta = tasks.DEFAULT_LEASE, idle_wait: float = IDLE_WAIT,
                 sweep_every: float = SWEEP_EVERY):
        self.clients = clients
        self.lease = lease
        self.idle_wait = idle_wait
        self.sweep_every = sweep_every
        self._stop = threading.Event()
        self._last_sweep = float("-inf")
        self._last_token_sweep = float("-inf")
        self._next_due = float("inf")  # monotonic time the earliest queued delivery falls due

    def stop(self) -> None:
        self._stop.set()

    def _sweep_due_at(self) -> float:
        return max(self._last_sweep + SWEEP_MIN_GAP, min(self._last_sweep + self.sweep_every, self._next_due))

    def _refresh_due(self) -> None:
        due = tasks.next_due(self.clients.db)
        self._next_due = float("inf") if due is None else time.monotonic() + (due - utcnow()).total_seconds()

    def maintain(self, force: bool = False) -> None:
        mono = time.monotonic()
        if force or mono >= self._sweep_due_at():
            self._last_sweep = mono
            tasks.sweep(self.clients, self.lease)
            self._refresh_due()
        if force or mono - self._last_token_sweep >= TOKEN_SWEEP_EVERY:
            self._last_token_sweep = mono
            removed = registry.sweep_stale_tokens(self.clients.db)
            purged = tasks.purge_old(self.clients)
            if removed or purged:
                log.info("push sweep: %d stale tokens forgotten, %d old delivery records purged", removed, purged)

    def run(self) -> None:
        for path, _ in EVENT_JOBS.values():
            _load(path)  # a bad table entry fails at start-up
        waker = changes.outbox_doorbell(self.clients.db, carried_types())  # opened before the first claim
        try:
            while not self._stop.is_set():
                try:
                    moved = relay_once(self.clients, self.lease)
                    if moved:
                        self._refresh_due()  # it may have deferred a sync tickle to the device's next slot
                    self.maintain()
                except Exception as exc:  # noqa: BLE001 - MongoDB/Redis away: keep trying, the outbox keeps the work
                    log.warning("push relay pass failed: %s", exc)
                    moved = 0
                    self._stop.wait(1.0)
                if not moved:
                    waker.wait(max(0.0, min(self.idle_wait, self._sweep_due_at() - time.monotonic())))
        finally:
            waker.close()


def main() -> None:
    from runtime.clients import clients_for
    from runtime.logs import configure_logging
    from runtime.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    check_settings(settings)  # a bad PCLOUD_FCM_* setting fails here, at start-up, not in the first job
    clients = clients_for(settings)
    clients.ensure_indexes()
    relay = Relay(clients)
    signal.signal(signal.SIGTERM, lambda *_: relay.stop())
    signal.signal(signal.SIGINT, lambda *_: relay.stop())
    log.info("push relay running")
    relay.run()


if __name__ == "__main__":
    main()
