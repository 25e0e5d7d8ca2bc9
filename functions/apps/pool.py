"""A bounded set of threads running executions, shared by the processor and the actions API.

Each run claims its execution with a lease first, so the same id may be offered by several processes (or
twice by one) and still runs once at a time. When a run settles the last execution of an event, the event
turns `done`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from functions.apps import executions as ex
from functions.apps.actions import Invoker

log = logging.getLogger(__name__)


class ExecutionPool:
    def __init__(self, invoker: Invoker, workers: int = 32):
        self.invoker = invoker
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="execution")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self.settled = threading.Event()  # set whenever a run ends (the sweeper's doorbell)

    def submit(self, execution_id: str, event: dict | None = None) -> Future:
        with self._lock:
            found = self._inflight.get(execution_id)
            if found is not None:
                return found
            future = self._executor.submit(self._run, execution_id, event)
            self._inflight[execution_id] = future
            return future

    def busy(self) -> int:
        with self._lock:
            return len(self._inflight)

    def _run(self, execution_id: str, event: dict | None):
        try:
            doc = self.invoker.run(execution_id, event)
            if doc is not None and doc.get("event_id") and doc["state"] in ex.FINAL:
                settle_event(self.invoker.db, doc["event_id"])
            return doc
        except Exception:  # noqa: BLE001 - logged; the lease runs out and the execution is run again
            log.exception("execution %s crashed in its runner", execution_id)
            return None
        finally:
            with self._lock:
                self._inflight.pop(execution_id, None)
            self.settled.set()

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


def settle_event(db, event_id: str) -> None:
    from runtime import events

    if ex.event_settled(db, event_id):
        events.set_state(db, event_id, "done")
