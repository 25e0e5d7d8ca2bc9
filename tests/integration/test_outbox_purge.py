"""The outbox does not grow forever: delivered events are swept after a day; pending and claimed ones stay."""

from __future__ import annotations

from datetime import timedelta

from runtime import events
from runtime.ids import utcnow


def test_delivered_events_are_purged_after_the_keep_period_and_nothing_else(clients):
    db = clients.db
    done = [events.emit(db, "node.changed", "u1", {"n": i}) for i in range(3)]
    pending = events.emit(db, "node.changed", "u1", {"n": "pending"})
    claimed = events.emit(db, "node.changed", "u1", {"n": "claimed"})
    db.outbox.update_one({"_id": claimed}, {"$set": {"status": "claimed", "claimed_at": utcnow()}})
    events.mark_done(db, done)

    assert events.purge_delivered(db) == 0  # delivered just now: kept for a day
    later = utcnow() + events.OUTBOX_KEEP_DONE + timedelta(minutes=1)
    assert events.purge_delivered(db, now=later) == 3
    assert {d["_id"] for d in db.outbox.find()} == {pending, claimed}
    assert events.purge_delivered(db, now=later) == 0


def test_events_of_a_retired_type_that_nothing_consumes_are_dropped(clients):
    db = clients.db
    stale = events.emit(db, "sso.session_ended", "u1", {"sid": "s"})  # what older versions wrote, never carried
    live = events.emit(db, "node.changed", "u1", {})
    assert events.purge_delivered(db) == 1
    assert db.outbox.find_one({"_id": stale}) is None and db.outbox.find_one({"_id": live})["status"] == "pending"


def test_the_purge_job_runs_on_the_process_clients(env, settings, clients, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from runtime.clients import forget

    old = events.emit(clients.db, "node.changed", "u1", {})
    events.mark_done(clients.db, [old])
    clients.db.outbox.update_one({"_id": old}, {"$set": {"done_at": utcnow() - timedelta(days=2)}})
    fresh = events.emit(clients.db, "node.changed", "u1", {})
    try:
        assert events.purge_outbox_job() == 1
    finally:
        forget(settings)
    assert [d["_id"] for d in clients.db.outbox.find()] == [fresh]


def test_emit_many_and_claim_batch_are_the_one_way_into_and_out_of_the_outbox(clients):
    db = clients.db
    ids = events.emit_many(db, [("node.changed", "u1", {"n": 1}), ("file.committed", "u1", {"n": 2}),
                                ("example.other", "u2", {})])
    assert [db.outbox.find_one({"_id": i})["status"] for i in ids] == ["pending"] * 3
    claimed = events.claim_batch(db, ["node.changed", "file.committed"], 10, timedelta(minutes=2))
    assert sorted(e["_id"] for e in claimed) == sorted(ids[:2]) and all(e["status"] == "claimed" for e in claimed)
    assert events.claim_batch(db, ["node.changed", "file.committed"], 10, timedelta(minutes=2)) == []
    later = utcnow() + timedelta(minutes=3)  # a relay that died: its claims are taken over
    assert len(events.claim_batch(db, ["node.changed"], 10, timedelta(minutes=2), now=later)) == 1
