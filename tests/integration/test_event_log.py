"""The event log (runtime/events.py, CONTRACT §8): append in the write's transaction, per-owner seq, consumers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest

from runtime import events
from runtime.ids import new_id, utcnow
from runtime.mongo import transaction


@pytest.fixture
def db(clients):
    clients.ensure_indexes()
    return clients.db


def _append(db, owner, type="graph.node.created", subject=None, session=None, **kw):
    return events.append(db, owner=owner, type=type, subject=subject or new_id(), data=kw.pop("data", {}),
                         session=session, **kw)


def test_append_returns_the_contract_shape(db):
    ev = _append(db, "u1", subject="n1", node_type="photos.Image", data={"node": {"id": "n1"}, "changed": ["a"]},
                 cause={"app": "faces", "execution_id": "x1", "depth": 1})
    assert set(ev) == {"id", "seq", "type", "subject", "node_type", "owner", "time", "state", "cause", "data"}
    assert ev["seq"] == 1 and ev["state"] == "new" and ev["owner"] == "u1" and ev["time"].endswith("Z")
    stored = db.events.find_one({"_id": ev["id"]})
    assert stored["pending"] == ["search", "apps"]
    plain = _append(db, "u1", type="devices.device.online")
    assert "node_type" not in plain and "cause" not in plain and plain["seq"] == 2
    assert db.events.find_one({"_id": plain["id"]})["pending"] == ["apps", "notify"]


def test_bad_type_or_owner_is_refused_and_nothing_written(db):
    for bad in ("graph.created", "Graph.node.created", "", "a.b.c.d"):
        with pytest.raises(ValueError):
            _append(db, "u1", type=bad)
    with pytest.raises(ValueError):
        _append(db, "")
    assert db.events.count_documents({}) == 0


def test_an_event_exists_iff_its_write_committed(db, clients):
    def write(session, fail):
        db.things.insert_one({"_id": "t1" if not fail else "t2"}, session=session)
        _append(db, "u1", subject="t1" if not fail else "t2", session=session)
        if fail:
            raise RuntimeError("the write fails after its event was appended")

    transaction(clients.mongo, lambda s: write(s, False))
    with pytest.raises(RuntimeError):
        transaction(clients.mongo, lambda s: write(s, True))
    assert [e["subject"] for e in db.events.find()] == ["t1"]
    assert db.things.count_documents({}) == 1


def test_a_process_killed_between_write_and_commit_leaves_neither(db, settings):
    """A real process writes a node and its event in a transaction, then is SIGKILLed before committing."""
    script = textwrap.dedent(f"""
        import sys, time
        from runtime.clients import Clients
        from runtime.settings import load_settings
        from runtime import events
        from pymongo.errors import OperationFailure
        clients = Clients(load_settings({{"PCLOUD_MONGO_URL": {settings.mongo_url!r}}}))
        db = clients.db
        for attempt in range(20):  # what runtime.mongo.transaction does on a transient conflict: start again
            with clients.mongo.start_session() as s:
                s.start_transaction()
                try:
                    db.nodes.insert_one({{"_id": "killed", "owner": "u1"}}, session=s)
                    events.append(db, owner="u1", type="files.node.created", subject="killed", data={{}},
                                  session=s)
                except OperationFailure as exc:
                    if exc.has_error_label("TransientTransactionError"):
                        s.abort_transaction()
                        continue
                    raise
                print("written", flush=True)
                time.sleep(60)
                s.commit_transaction()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert db.nodes.find_one({"_id": "killed"}) is None
    assert db.events.count_documents({"subject": "killed"}) == 0
    # and the owner's numbering goes on: a later committed event is visible and next in line
    later = _append(db, "u1", type="files.node.created")
    assert db.events.find_one({"_id": later["id"]}) is not None


def test_seq_per_owner_increases_without_gaps_under_concurrency(db, clients):
    def worker(owner):
        for _ in range(10):
            transaction(clients.mongo, lambda s: _append(db, owner, session=s))

    threads = [threading.Thread(target=worker, args=(o,)) for o in ("a", "a", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(e["seq"] for e in db.events.find({"owner": "a"})) == list(range(1, 31))
    assert sorted(e["seq"] for e in db.events.find({"owner": "b"})) == list(range(1, 11))


def test_list_events_is_owner_scoped_filtered_and_paged(db):
    for i in range(5):
        _append(db, "alice", type="files.node.created" if i % 2 else "graph.node.updated", subject=f"a{i}")
    _append(db, "bob", subject="b0")
    items, cursor = events.list_events(db, "alice", limit=2)
    assert [e["subject"] for e in items] == ["a0", "a1"] and cursor == "2"
    items, cursor = events.list_events(db, "alice", after=int(cursor), limit=10)
    assert [e["subject"] for e in items] == ["a2", "a3", "a4"] and cursor is None
    items, _ = events.list_events(db, "alice", type_prefix="files.node")
    assert [e["subject"] for e in items] == ["a1", "a3"]
    assert events.list_events(db, "alice", type_prefix="files.nod")[0] == []
    assert [e["subject"] for e in events.list_events(db, "bob")[0]] == ["b0"]
    assert events.get_event(db, items[0]["id"], owner="bob") is None


def test_claim_ack_and_consumers_are_independent(db):
    ids = [_append(db, "u1", subject=f"s{i}")["id"] for i in range(3)]
    got = events.claim(db, "search", limit=10)
    assert [d["_id"] for d in got] == ids and all(d["attempts"] == 1 for d in got)
    assert events.claim(db, "search", limit=10) == []  # leased
    events.ack(db, "search", ids[:2])
    assert events.backlog(db, "search") == 1
    assert [d["_id"] for d in events.claim(db, "apps", limit=10)] == ids  # another consumer still sees all


def test_a_consumer_killed_mid_batch_gets_its_events_back_after_the_lease(db):
    ids = [_append(db, "u1", subject=f"s{i}")["id"] for i in range(3)]
    first = events.claim(db, "search", limit=10, lease_seconds=0.5)
    assert len(first) == 3
    # the consumer dies: no ack. Before the lease runs out nobody else gets them …
    assert events.claim(db, "search", limit=10) == []
    time.sleep(0.7)
    again = events.claim(db, "search", limit=10)
    assert [d["_id"] for d in again] == ids and all(d["attempts"] == 2 for d in again)


def test_concurrent_claimers_get_disjoint_batches(db):
    for i in range(60):
        _append(db, "u1", subject=f"s{i}")
    seen: list[str] = []
    lock = threading.Lock()

    def claimer():
        while True:
            batch = events.claim(db, "search", limit=7)
            if not batch:
                return
            with lock:
                seen.extend(d["_id"] for d in batch)
            events.ack(db, "search", [d["_id"] for d in batch])

    threads = [threading.Thread(target=claimer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen) == 60 and len(set(seen)) == 60


def test_hand_back_delays_and_extend_keeps(db):
    ev = _append(db, "u1")
    events.claim(db, "search", lease_seconds=0.3)
    events.extend(db, "search", [ev["id"]], lease_seconds=30)
    time.sleep(0.4)
    assert events.claim(db, "search") == []
    events.hand_back(db, "search", [ev["id"]])
    assert [d["_id"] for d in events.claim(db, "search")] == [ev["id"]]


def test_unknown_consumer_is_an_error(db):
    with pytest.raises(ValueError):
        events.claim(db, "nobody")


def test_waker_wakes_on_a_committed_insert_for_its_consumer_only(db, clients):
    waker = events.Waker(db, "search")
    try:
        assert waker.wait(0.3) is False
        _append(db, "u1", type="devices.device.online")  # not pending for search: no wake
        assert waker.wait(0.5) is False

        def later():
            time.sleep(0.2)
            transaction(clients.mongo, lambda s: _append(db, "u1", session=s))

        threading.Thread(target=later).start()
        assert waker.wait(10) is True
    finally:
        waker.close()


def test_run_consumer_delivers_at_least_once_and_retries_a_failed_batch(db):
    stop = threading.Event()
    handled: list[str] = []
    failures = {"left": 1}

    def handle(batch):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("first batch fails once")
        handled.extend(d["subject"] for d in batch)
        if len(set(handled)) >= 4:
            stop.set()

    for i in range(2):
        _append(db, "u1", subject=f"early{i}")
    thread = threading.Thread(target=events.run_consumer, args=(db, "search", handle, stop),
                              kwargs={"retry_seconds": 0.2, "idle_seconds": 1.0})
    thread.start()
    time.sleep(0.3)
    for i in range(2):
        _append(db, "u1", subject=f"late{i}")
    thread.join(20)
    stop.set()
    assert set(handled) == {"early0", "early1", "late0", "late1"}
    assert events.backlog(db, "search") == 0


def test_set_state_and_sweep(db):
    ev = _append(db, "u1")
    assert events.set_state(db, ev["id"], "in_progress") == 1
    assert events.get_event(db, ev["id"])["state"] == "in_progress"
    with pytest.raises(ValueError):
        events.set_state(db, ev["id"], "finished")
    old = _append(db, "u1")
    db.events.update_one({"_id": old["id"]}, {"$set": {"time": utcnow() - timedelta(days=31)}})
    assert events.sweep_expired(db, 30) == 1
    assert events.get_event(db, old["id"]) is None and events.get_event(db, ev["id"]) is not None


def test_a_consumer_process_killed_mid_batch_gets_redelivered(db, settings):
    """A real consumer process claims a batch with a short lease and is SIGKILLed inside its handler."""
    ids = [_append(db, "u1", subject=f"k{i}")["id"] for i in range(4)]
    script = textwrap.dedent(f"""
        import threading, time
        from runtime.clients import Clients
        from runtime.settings import load_settings
        from runtime import events
        clients = Clients(load_settings({{"PCLOUD_MONGO_URL": {settings.mongo_url!r}}}))
        def handle(batch):
            print("handling", len(batch), flush=True)
            time.sleep(60)
        events.run_consumer(clients.db, "search", handle, threading.Event(), lease_seconds=4.0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "handling 4"
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert events.claim(db, "search") == []  # its lease still runs
    deadline = time.monotonic() + 20
    again = []
    while not again and time.monotonic() < deadline:
        time.sleep(0.2)
        again = events.claim(db, "search")
    assert sorted(d["_id"] for d in again) == sorted(ids) and all(d["attempts"] == 2 for d in again)
