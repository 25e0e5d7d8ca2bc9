"""Periodic maintenance: one table of jobs, enqueued on rq at their interval by one scheduler process.

A Redis lock per job and interval makes a second scheduler (or a restart) harmless: each tick runs once.
Jobs are module-level functions taking no arguments; they load settings and clients themselves.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time

from runtime.clients import clients_for
from runtime.logs import configure_logging
from runtime.settings import load_settings

log = logging.getLogger(__name__)

# (job "module:function", every N seconds, rq queue). Add a line for each periodic job.
PERIODIC: list[tuple[str, int, str]] = [
    ("functions.pairing.tasks:expire_sessions", 2, "maintenance"),  # backstop for the listener's sweeper
    ("functions.pairing.tasks:mark_devices_offline", 10, "maintenance"),  # NAS silent for 90 s → offline
    ("functions.files.tasks:expire_uploads", 300, "maintenance"),  # uncommitted uploads stop protecting blocks
    ("functions.files.tasks:purge_trash", 3600, "maintenance"),  # trash older than PCLOUD_TRASH_DAYS → tombstones
    ("functions.files.tasks:collect_blocks", 600, "maintenance"),  # blocks unreferenced past the grace period
    ("functions.sso.jobs:end_sessions", 15, "maintenance"),  # expired SSO sessions + back-channel logout retries
    ("runtime.events:sweep_job", 3600, "maintenance"),  # events older than PCLOUD_EVENT_RETENTION_DAYS
]


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def tick(clients, now: float | None = None) -> list[str]:
    """Enqueue every job whose interval has come round; returns what was enqueued."""
    now = time.time() if now is None else now
    enqueued = []
    for path, every, queue in PERIODIC:
        slot = int(now // every)
        key = clients.redis_keys.k("sched", path, slot)
        if clients.redis.set(key, "1", nx=True, ex=every * 2):
            clients.queue(queue).enqueue(path.replace(":", "."), job_timeout=max(every, 60), result_ttl=600)
            enqueued.append(path)
    return enqueued


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    for path, _, _ in PERIODIC:
        _load(path)  # fail at start-up on a bad table entry, not at the first tick
    clients = clients_for(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("scheduler running %d periodic jobs", len(PERIODIC))
    while not stop.is_set():
        try:
            done = tick(clients)
            if done:
                log.info("enqueued %s", ", ".join(done))
        except Exception as exc:  # noqa: BLE001 - a broken tick (Redis away) must not kill the scheduler
            log.warning("scheduler tick failed: %s", exc)
        stop.wait(1.0)


if __name__ == "__main__":
    main()
