"""Periodic maintenance: each package declares its jobs, one scheduler process enqueues them on rq on time.

A package that has periodic work lists it next to the jobs, in the module named in `JOB_MODULES`:

    from runtime.scheduler import Periodic
    PERIODIC = [Periodic(expire_sessions, every=2), Periodic(mark_devices_offline, every=10)]

The scheduler imports those modules by name at start-up (`JOB_MODULES`, or the module names given on the
command line), so runtime never imports a function (the layers in .importlinter) and a new package adds one
line here — the same way it adds a Procfile line. A module without `PERIODIC`, a job that is not a
module-level function, or one declared twice fails at start-up, not at the first tick.

A Redis lock per job and interval makes a second scheduler (or a restart) harmless: each tick runs once.
Jobs are module-level functions taking no arguments; they load settings and clients themselves.

A module may also list `ON_INSERT = [OnInsert(job, collection="…")]`: work that should not wait for the next
interval. The scheduler keeps a change-stream doorbell (runtime/changes.py) on that collection and enqueues the
job as soon as a document is inserted (at most once per `spacing` seconds; inserts meanwhile are not lost, the
job is enqueued when the spacing is over). The job finds its work in the collection, so a ring missed while the
scheduler was down is caught by its first look at start-up, and a second scheduler only costs a spare run.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runtime.changes import Doorbell
from runtime.daemon import stop_on_signals

log = logging.getLogger(__name__)

# The modules whose PERIODIC lists the scheduler runs (names, not imports: see the module docstring).
JOB_MODULES: tuple[str, ...] = (
    "functions.pairing.tasks",  # session deadlines (backstop for the listener), NAS offline
    "functions.files.tasks",  # upload expiry, trash purge, block GC
    "functions.files.storage_tasks",  # replica placement and repair, scrub
    "functions.sso.jobs",  # expired SSO sessions + back-channel logout retries
    "runtime.events",  # event-log retention, delivered outbox events
    "functions.notify.tasks",  # storage nearly full, old delivery records
)


@dataclass(frozen=True)
class Periodic:
    """`job` (a module-level function, no arguments) enqueued on rq `queue` every `every` seconds."""

    job: Callable[[], object]
    every: int
    queue: str = "maintenance"
    timeout: int | None = None  # rq job timeout; default max(every, 60) s

    @property
    def path(self) -> str:
        return f"{self.job.__module__}:{self.job.__qualname__}"


@dataclass(frozen=True)
class OnInsert:
    """`job` (a module-level function, no arguments) enqueued on rq `queue` when a document is inserted into
    `collection`, at most every `spacing` seconds."""

    job: Callable[[], object]
    collection: str
    queue: str = "maintenance"
    timeout: int | None = None  # rq job timeout; default 60 s
    spacing: float = 0.25

    @property
    def path(self) -> str:
        return f"{self.job.__module__}:{self.job.__qualname__}"


def on_insert_jobs(modules: Iterable[str] = JOB_MODULES) -> list[OnInsert]:
    """Every declared ON_INSERT job of `modules` (optional per module), checked at start-up."""
    found: dict[tuple[str, str], OnInsert] = {}
    for name in modules:
        declared = getattr(importlib.import_module(name), "ON_INSERT", [])
        if not isinstance(declared, list | tuple):
            raise ValueError(f"{name}.ON_INSERT must be a list of OnInsert")
        for entry in declared:
            if not isinstance(entry, OnInsert) or not entry.collection or entry.spacing < 0:
                raise ValueError(f"{name}.ON_INSERT: {entry!r} is not an OnInsert(job, collection)")
            module_name, _, attr = entry.path.partition(":")
            if "." in attr or getattr(importlib.import_module(module_name), attr, None) is not entry.job:
                raise ValueError(f"{name}.ON_INSERT: {entry.path} is not a module-level function rq can import")
            key = (entry.path, entry.collection)
            if key in found:
                raise ValueError(f"on-insert job {entry.path} on {entry.collection} is declared twice")
            found[key] = entry
    return list(found.values())


class Ringer:
    """One OnInsert entry: its doorbell, and whether a ring still waits for its job to be enqueued."""

    def __init__(self, clients, entry: OnInsert, clock: Callable[[], float] = time.monotonic):
        self.clients, self.entry, self.clock = clients, entry, clock
        self.collection = clients.db[entry.collection]
        self.bell = Doorbell(self.collection, {}, f"{entry.collection} (for {entry.path})", await_ms=100,
                             fallback_sleep=0.5)
        self.enqueued_at = float("-inf")
        self.pending = self._waiting()  # inserted while no scheduler was watching
        self.enqueued = 0

    def _waiting(self) -> bool:
        return self.collection.find_one({}, {"_id": 1}) is not None

    def poll(self, timeout: float) -> bool:
        """Wait up to `timeout` for a ring; enqueue the job when one is due. True when it was enqueued."""
        if self.pending:
            timeout = min(timeout, max(0.0, self.enqueued_at + self.entry.spacing - self.clock()))
        if self.bell.wait(timeout) or (not self.bell.watching and self._waiting()):
            self.pending = True
        if not self.pending or self.clock() - self.enqueued_at < self.entry.spacing:
            return False
        self.clients.queue(self.entry.queue).enqueue(self.entry.path.replace(":", "."),
                                                     job_timeout=self.entry.timeout or 60, result_ttl=600)
        self.pending, self.enqueued_at = False, self.clock()
        self.enqueued += 1
        return True

    def close(self) -> None:
        self.bell.close()


def periodic_jobs(modules: Iterable[str] = JOB_MODULES) -> list[Periodic]:
    """Every declared job of `modules`, checked: a bad declaration fails here, at start-up."""
    found: dict[str, Periodic] = {}
    for name in modules:
        module = importlib.import_module(name)
        declared = getattr(module, "PERIODIC", None)
        if not isinstance(declared, list | tuple):
            raise ValueError(f"{name} is in the scheduler's job modules but declares no PERIODIC list")
        for entry in declared:
            if not isinstance(entry, Periodic) or not isinstance(entry.every, int) or entry.every < 1:
                raise ValueError(f"{name}.PERIODIC: {entry!r} is not a Periodic(job, every>=1)")
            module_name, _, attr = entry.path.partition(":")
            if "." in attr or getattr(importlib.import_module(module_name), attr, None) is not entry.job:
                raise ValueError(f"{name}.PERIODIC: {entry.path} is not a module-level function rq can import")
            if entry.path in found:
                raise ValueError(f"periodic job {entry.path} is declared twice")
            found[entry.path] = entry
    return list(found.values())


def tick(clients, now: float | None = None, jobs: list[Periodic] | None = None) -> list[str]:
    """Enqueue every job whose interval has come round; returns the paths ("module:function") enqueued."""
    now = time.time() if now is None else now
    enqueued = []
    for job in periodic_jobs() if jobs is None else jobs:
        slot = int(now // job.every)
        key = clients.redis_keys.k("sched", job.path, slot)
        if clients.redis.set(key, "1", nx=True, ex=job.every * 2):
            clients.queue(job.queue).enqueue(job.path.replace(":", "."), job_timeout=job.timeout or max(job.every, 60),
                                             result_ttl=600)
            enqueued.append(job.path)
    return enqueued


def serve(clients, jobs: list[Periodic], on_insert: list[OnInsert], stop) -> None:
    """The scheduler loop: a tick every second; in between, the doorbells of the on-insert jobs."""
    ringers = [Ringer(clients, entry) for entry in on_insert]
    last_tick = float("-inf")
    try:
        while not stop.is_set():
            if time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                try:
                    done = tick(clients, jobs=jobs)
                    if done:
                        log.info("enqueued %s", ", ".join(done))
                except Exception as exc:  # noqa: BLE001 - a broken tick (Redis away) must not kill the scheduler
                    log.warning("scheduler tick failed: %s", exc)
            wait = max(0.05, 1.0 - (time.monotonic() - last_tick))
            if not ringers:
                stop.wait(wait)
            for ringer in ringers:
                try:
                    ringer.poll(wait / len(ringers))
                except Exception as exc:  # noqa: BLE001 - Redis or the database away: the ring stays pending
                    log.warning("scheduler: on-insert job %s not enqueued: %s", ringer.entry.path, exc)
                    stop.wait(1.0)
    finally:
        for ringer in ringers:
            ringer.close()


def main(argv: list[str] | None = None) -> None:
    from runtime.clients import clients_for
    from runtime.logs import configure_logging
    from runtime.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    jobs = periodic_jobs(argv or JOB_MODULES)
    on_insert = on_insert_jobs(argv or JOB_MODULES)
    clients = clients_for(settings)
    stop = stop_on_signals()
    log.info("scheduler running %d periodic jobs: %s; on insert: %s", len(jobs), ", ".join(j.path for j in jobs),
             ", ".join(f"{e.path} ({e.collection})" for e in on_insert) or "none")
    serve(clients, jobs, on_insert, stop)


if __name__ == "__main__":
    # run the module under its own name: as `__main__` its Periodic would not be the class the packages use
    # in their PERIODIC lists, and every declaration would be refused
    from runtime.scheduler import main as _main

    _main(sys.argv[1:])
