"""The app event processor (`events` in the Procfile; run any number): events → executions → actions.

Three loops in one process:
* the consumer (`runtime.events.run_consumer`, consumer `apps`): woken by inserts, it matches each event against
  the active apps' triggers, inserts one execution per (trigger, event) (a unique index: a second processor or a
  redelivery inserts nothing), marks the event in_progress (done when nothing fired) and runs what it made;
* the sweeper: runs what is due — retries after their backoff, executions whose runner died (lapsed lease),
  asynchronous API calls nobody ran, replayed events, init calls;
* replays: feeds an app the past events of a user (or of every user, at approval with `replay: true`).

    python -m functions.apps.processor [--workers 32]
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from datetime import timedelta

from functions.apps import executions as ex
from functions.apps import replay, store
from functions.apps.actions import Invoker, tell
from functions.apps.planner import Planner
from functions.apps.pool import ExecutionPool, settle_event
from runtime.ids import utcnow

log = logging.getLogger(__name__)
CONSUMER = "apps"


class Processor:
    def __init__(self, db, settings, keys, blob_store=None, workers: int = 32):
        self.db = db
        self.settings = settings
        self.invoker = Invoker(db, settings, keys, blob_store)
        self.pool = ExecutionPool(self.invoker, workers=workers)
        self.stop = threading.Event()
        self._seen_init: set[tuple[str, str, str]] = set()

    # --- events -------------------------------------------------------------------------------------------
    def handle(self, docs: list[dict]) -> None:
        from runtime import events

        planner = Planner(self.db)
        runnable: list[tuple[str, dict]] = []
        for doc in docs:
            event = events.public(doc)
            self._init_for(planner, event["owner"])
            created = planner.plan(event)
            for execution in created:
                if ex.insert_for_event(self.db, execution) and execution["state"] == "new":
                    runnable.append((execution["_id"], event))
                    tell(self.invoker.notify, execution)
        replay.mark_states(self.db, [d["_id"] for d in docs])
        for execution_id, event in runnable:
            self.pool.submit(execution_id, event)

    def _init_for(self, planner: Planner, owner: str) -> None:
        """An app becomes active for a user at their first event after activation: run its init once."""
        for app_doc in planner.apps:
            if app_doc["state"] != "active" or not app_doc["manifest"].get("init"):
                continue
            key = (app_doc["_id"], app_doc["version"], owner)
            if key in self._seen_init:
                continue
            self._seen_init.add(key)
            if store.claim_init(self.db, app_doc["_id"], app_doc["version"], owner):
                for execution in planner.init_executions(app_doc, owner):
                    self.db.executions.insert_one(execution)
                    tell(self.invoker.notify, execution)
                    self.pool.submit(execution["_id"])

    # --- due executions -------------------------------------------------------------------------------------
    def sweep_once(self, limit: int | None = None) -> int:
        """Offer due executions to the pool, no more than it has room for (the rest wait for the next pass)."""
        room = limit if limit is not None else max(self.pool.workers * 2 - self.pool.busy(), 0)
        if room == 0:
            return 1
        active = [d["_id"] for d in store.all_apps(self.db, states=("active",))] + ["files", "graph"]
        found = ex.due(self.db, room, apps=active)
        for doc in found:
            self.pool.submit(doc["_id"])
        return len(found)

    def settle_recent(self, seconds: float = 120.0) -> int:
        """Events of executions that ended lately are re-marked (done when all theirs ended).

        A backstop: marking races (a processor killed between writing in_progress and checking again) heal
        within one pass instead of leaving an event in_progress for good.
        """
        since = utcnow() - timedelta(seconds=seconds)
        ids = [e for e in self.db.executions.distinct("event_id", {"finished_at": {"$gte": since}}) if e]
        if ids:
            replay.mark_states(self.db, ids)
        return len(ids)

    def sweep_loop(self) -> None:
        last_settle = 0.0
        while not self.stop.is_set():
            try:
                count = self.sweep_once()
                if time.monotonic() - last_settle > 5.0:
                    last_settle = time.monotonic()
                    self.purge_orphans()
                    self.settle_recent()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the sweeper
                log.exception("sweeping due executions failed")
                count = 0
            self.pool.settled.clear()
            # Busy: look again as soon as a run ends; idle: a retry's backoff or a lapsed lease is at most 1 s late.
            self.pool.settled.wait(0.05 if count else 1.0)

    def purge_orphans(self) -> None:
        """Executions of an app that is gone end dead, so their events settle."""
        names = {d["_id"] for d in store.all_apps(self.db)} | {"files", "graph"}
        for doc in self.db.executions.aggregate([{"$match": {"state": {"$nin": list(ex.FINAL)}}},
                                                  {"$group": {"_id": "$app"}}]):
            if doc["_id"] not in names:
                ex.purge_app(self.db, doc["_id"])
                for event_id in self.db.executions.distinct("event_id", {"app": doc["_id"]}):
                    if event_id:
                        settle_event(self.db, event_id)

    # --- replays -----------------------------------------------------------------------------------------
    def replay_loop(self) -> None:
        while not self.stop.is_set():
            try:
                worked = replay.work_one(self.db, self.pool)
            except Exception:  # noqa: BLE001
                log.exception("replay failed")
                worked = False
            if not worked:
                self.stop.wait(1.0)

    # --- the process -------------------------------------------------------------------------------------
    def run(self) -> None:
        from runtime import events

        threads = [threading.Thread(target=self.sweep_loop, name="sweeper", daemon=True),
                   threading.Thread(target=self.replay_loop, name="replay", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            events.run_consumer(self.db, CONSUMER, self.handle, self.stop, batch=200, idle_seconds=5.0,
                                lease_seconds=30.0)
        finally:
            self.stop.set()
            self.pool.shutdown(wait=False)


def main(argv=None) -> None:
    from runtime.clients import process_clients
    from runtime.daemon import stop_on_signals
    from runtime.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    clients = process_clients()
    configure_logging(clients.settings.log_level)
    clients.ensure_indexes()
    processor = Processor(clients.db, clients.settings, clients.keys, clients.store, workers=args.workers)
    stop_on_signals(processor.stop)
    log.info("app event processor running")
    processor.run()


if __name__ == "__main__":
    main()
