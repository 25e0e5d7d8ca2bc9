"""Storage durability glue (issue 19): wires the replicated store's hooks to the placement documents and runs
the placement worker and the scrubber with a process's clients. Routes (storage_routes.py) and the periodic
jobs (storage_tasks.py) call these; the logic is in policy.py, replication.py and sealing.py."""

from __future__ import annotations

import threading

from functions.files import replication
from functions.files.sealing import Sealer
from runtime.crypto import KeyRing

_keyrings: dict[int, KeyRing] = {}
_lock = threading.Lock()


def install(clients) -> None:
    """Wire the store's hooks when the process builds it (not now: the store may be remote and down)."""
    clients.on_store(wire)


def wire(clients, store) -> None:
    """Reads that meet a corrupt copy report it, so repair replaces it; a block only sealed copies hold is read
    by opening one."""
    if hasattr(store, "on_corrupt") and store.on_corrupt is None:
        db = clients.db
        store.on_corrupt = lambda name, address: replication.report_corrupt(db, name, address)
    if hasattr(store, "fallback") and store.fallback is None:
        store.fallback = lambda digest: sealer(clients).fallback(digest)


def keyring(clients) -> KeyRing:
    """One per process's clients: it caches unwrapped data keys."""
    with _lock:
        found = _keyrings.get(id(clients))
        if found is None or found.db is not clients.db:
            found = _keyrings[id(clients)] = KeyRing(clients.db, clients.keys)
        return found


def sealer(clients) -> Sealer:
    return Sealer(clients.db, clients.store, keyring(clients))


def rotate_key(clients) -> dict:
    """A new key-encryption key; every user's data key re-wrapped (no block is rewritten)."""
    return keyring(clients).rotate()


def store_names(clients) -> list[str]:
    return list(getattr(clients.store, "names", ["default"]))


def run_placement(clients) -> dict:
    install(clients)
    return replication.run_once(clients.db, clients.store, sealer=sealer(clients))


def run_scrub(clients) -> dict:
    install(clients)
    token = replication.lease(clients.db)
    if token is None:
        return {"skipped": "another placement run holds the lease"}
    try:
        return replication.scrub(clients.db, clients.store, days=clients.settings.scrub_days)
    finally:
        replication.release(clients.db, token)


def summary(clients) -> dict:
    return replication.summary(clients.db, clients.store)


def metrics_text(clients) -> str:
    return replication.metrics_text(clients.db, clients.store)
