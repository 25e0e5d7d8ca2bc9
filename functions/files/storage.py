"""Storage durability glue (issue 19): wires the replicated store's hooks to the placement documents and runs
the placement worker and the scrubber with a process's clients. Routes (storage_routes.py) and the periodic
jobs (storage_tasks.py) call these; the logic is in policy.py, replication.py and sealing.py."""

from __future__ import annotations

import threading

from functions.files import clouds, policy, replication
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
    if hasattr(store, "resolver") and store.resolver is None:  # the owners' own drives (clouds.py)
        store.resolver = lambda name: clouds.store_for(clients.db, clients.keys, clients.settings, name)
        store.locate = lambda address: (replication.user_store_holders(clients.db, address)
                                        if clouds.any_connected(clients.db) else [])


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


def store_names(clients, owner: str | None = None) -> list[str]:
    """The configured stores, and with `owner` that person's connected drives (what their policies may name)."""
    names = list(getattr(clients.store, "names", ["default"]))
    return names + clouds.store_names(clients.db, owner) if owner else names


def store_problems(clients, stores: list[str] | None) -> list[dict]:
    """Why a policy's copies may fall short now: a named store that is down, a drive revoked or disconnected."""
    install(clients)
    store = clients.store
    named = stores or list(getattr(store, "names", []))
    user = clouds.states(clients.db, named)
    problems = []
    for name in named:
        state = user.get(name)
        if state in ("revoked", "disconnected"):
            problems.append({"store": name, "state": state})
        elif hasattr(store, "healthy") and not store.healthy(name):
            problems.append({"store": name, "state": "unavailable"})
    return problems


def policy_answer(clients, owner: str, node_id, change: dict | None = None) -> dict:
    """GET/PUT of a folder's policy, with what degrades it now (`store_problems`)."""
    known = store_names(clients, owner)
    if change is None:
        answer = policy.get_policy(clients.db, owner, node_id, known)
    else:
        answer = policy.set_policy(clients.db, owner, node_id, change, known)
    return {**answer, "store_problems": store_problems(clients, answer["effective"]["stores"])}


def connected(clients, doc: dict) -> None:
    """A drive (re)connected: it counts again at once in this process."""
    install(clients)
    if hasattr(clients.store, "mark_up"):
        clients.store.mark_up(clouds.store_name(doc["_id"]))


def disconnected(clients, name: str) -> None:
    """The drive's copies no longer count: its blocks go back to repair (degraded while the policy names it)."""
    replication.forget_store(clients.db, name)


def run_placement(clients) -> dict:
    install(clients)
    return replication.run_once(clients.db, clients.store, sealer=sealer(clients))


def run_requested(clients) -> dict:
    """The placement requests of commits (at_rest folders: seal now), as the doorbell job runs them."""
    install(clients)
    return replication.run_requested(clients.db, clients.store, sealer=sealer(clients))


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
    install(clients)
    return {**replication.summary(clients.db, clients.store), "clouds": clouds.summary(clients.db)}


def metrics_text(clients) -> str:
    return replication.metrics_text(clients.db, clients.store)
