"""Outbox event → relay → rq → worker → firebase-admin → local FCM stand-in, with real MongoDB and Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from mobile_api.sync import encode_cursor
from push import registry, service, tasks
from push.relay import relay_once
from runtime import changes, events
from runtime.ids import utcnow


def emit(clients, etype, user_id, payload):
    return events.emit(clients.db, etype, user_id, payload)


def deliveries(clients, **query):
    return list(clients.db.push_deliveries.find(query))


def test_every_event_kind_reaches_the_phones(clients, push_context, drain_push, fcm_fake, make_phone):
    user, other_user = "u-every", "u-other"
    make_phone(user, "tok-a")
    make_phone(user, "tok-b", platform="ios")
    tokenless = make_phone(user, None)
    make_phone(other_user, "tok-other")
    emit(clients, "node.changed", user, {"node_id": "n1", "seq": 7})
    emit(clients, "conflict.created", user, {"conflict_id": "c1", "node_id": "n1"})
    emit(clients, "pairing.status", user, {"session_id": "s1", "status": "waiting", "serial": "SN1"})
    emit(clients, "pairing.status", user, {"session_id": "s1", "status": "start", "serial": "SN1"})  # no push
    emit(clients, "device.online", user, {"device_id": "nas1", "online": True})

    assert relay_once(clients, push_context.lease) == 5
    drain_push()

    for token in ("tok-a", "tok-b"):
        got = {m["data"]["type"]: m for m in fcm_fake.messages_for(token)}
        assert set(got) == {"sync", "conflict", "pairing", "device"}
        assert got["sync"]["data"] == {"type": "sync", "cursor": encode_cursor(7)}
        assert got["sync"]["android"]["collapse_key"] == "sync"
        assert got["conflict"]["data"] == {"type": "conflict", "conflict_id": "c1", "node_id": "n1"}
        assert got["conflict"]["notification"]["title"]
        assert got["pairing"]["data"] == {"type": "pairing", "session_id": "s1", "status": "waiting"}
        assert got["pairing"]["notification"]["body"]
        assert got["device"]["data"] == {"type": "device", "device_id": "nas1", "online": "true"}
    assert fcm_fake.messages_for("tok-other") == []
    assert {d["status"] for d in deliveries(clients)} == {"sent"}
    assert deliveries(clients, device_id=tokenless) == []
    assert len(deliveries(clients)) == 8
    assert clients.db.outbox.count_documents({"status": {"$ne": "done"}}) == 0


def test_sync_skips_the_device_that_made_the_change_and_is_coalesced(clients, push_context, drain_push, fcm_fake,
                                                                      make_phone):
    user = "u-sync"
    origin = make_phone(user, "tok-origin")
    make_phone(user, "tok-other")
    for seq in range(1, 6):
        emit(clients, "node.changed", user, {"node_id": f"n{seq}", "seq": seq, "device_id": origin})
    relay_once(clients, push_context.lease)
    # changes right after, inside the device's 2 s window: they wait for its next slot, as one tickle
    for seq in range(6, 9):
        emit(clients, "node.changed", user, {"node_id": f"n{seq}", "seq": seq, "device_id": origin})
    relay_once(clients, push_context.lease)
    drain_push()

    assert fcm_fake.messages_for("tok-origin") == []
    # five changes in one pass: one tickle now, with the newest cursor
    assert [m["data"]["cursor"] for m in fcm_fake.messages_for("tok-other")] == [encode_cursor(5)]
    waiting = deliveries(clients, status="queued")
    assert len(waiting) == 1 and waiting[0]["seq"] == 8

    time.sleep(2.1)  # let the device's 2 s window pass (Redis keeps real time)
    assert tasks.sweep(clients, push_context.lease) == 1
    drain_push()
    assert [m["data"]["cursor"] for m in fcm_fake.messages_for("tok-other")] == [encode_cursor(5), encode_cursor(8)]


def test_a_commit_makes_one_sync_tickle_per_device(clients, push_context, drain_push, fcm_fake, make_phone):
    """A commit writes node.changed and file.committed for one position: one tickle, and no second one 2 s
    later holding the device's slot (the next commit would have waited for it)."""
    user = "u-commit"
    origin = make_phone(user, "tok-a")
    make_phone(user, "tok-b")
    clients.db.nodes.insert_one({"_id": "n-commit", "owner": user, "seq": 3})
    emit(clients, "node.changed", user, {"node_id": "n-commit", "seq": 3, "device_id": origin})
    emit(clients, "file.committed", user, {"node_id": "n-commit", "upload_id": "up1", "device_id": origin})
    relay_once(clients, push_context.lease)
    drain_push()

    assert [m["data"]["cursor"] for m in fcm_fake.messages_for("tok-b")] == [encode_cursor(3)]
    assert fcm_fake.messages_for("tok-a") == []
    assert deliveries(clients, status="queued") == []


def test_unregistered_prunes_exactly_that_token(clients, push_context, drain_push, fcm_fake, make_phone):
    fcm_fake.behave("tok-dead", "UNREGISTERED")
    fcm_fake.behave("tok-bad", "INVALID_ARGUMENT")
    dead = make_phone("u1", "tok-dead")
    bad = make_phone("u1", "tok-bad")
    alive = make_phone("u1", "tok-alive")
    stranger = make_phone("u2", "tok-stranger")
    emit(clients, "conflict.created", "u1", {"conflict_id": "c1", "node_id": "n1"})
    relay_once(clients, push_context.lease)
    drain_push()

    devices = {d["_id"]: d for d in clients.db.devices.find()}
    assert "push_token" not in devices[dead] and "push_token" not in devices[bad]
    assert devices[alive]["push_token"] == "tok-alive"
    assert devices[stranger]["push_token"] == "tok-stranger"
    failed = {d["device_id"]: d for d in deliveries(clients, status="failed")}
    assert set(failed) == {dead, bad}
    assert failed[dead]["reason"].startswith("UNREGISTERED")
    assert len(fcm_fake.messages_for("tok-alive")) == 1


def test_quota_retry_after_does_not_block_and_arrives_after_the_wait(clients, push_context, drain_push, fcm_fake,
                                                                      make_phone):
    fcm_fake.behave("tok-busy", "QUOTA_EXCEEDED", times=1, retry_after=30)
    busy = make_phone("u1", "tok-busy")
    make_phone("u1", "tok-free")
    emit(clients, "conflict.created", "u1", {"conflict_id": "c1", "node_id": "n1"})
    relay_once(clients, push_context.lease)
    before = utcnow()
    drain_push()  # returns: the worker did not sleep through Retry-After

    assert len(fcm_fake.messages_for("tok-free")) == 1  # the rest of the batch went out
    assert fcm_fake.messages_for("tok-busy") == []
    waiting = clients.db.push_deliveries.find_one({"device_id": busy})
    assert waiting["status"] == "queued" and waiting["reason"].startswith("retrying: QUOTA_EXCEEDED")
    retry_at = waiting["next_attempt_at"]
    assert retry_at >= before + timedelta(seconds=30)
    assert clients.db.devices.find_one({"_id": busy})["push_token"] == "tok-busy"  # transient: token kept

    # the worker is free meanwhile: another push goes out at once
    emit(clients, "device.online", "u1", {"device_id": "nas", "online": False})
    relay_once(clients, push_context.lease)
    assert tasks.sweep(clients, push_context.lease) == 0  # not due yet
    drain_push()
    assert [m["data"]["type"] for m in fcm_fake.messages_for("tok-free")] == ["conflict", "device"]

    assert tasks.sweep(clients, push_context.lease, now=retry_at) == 1  # the wait is over
    drain_push()
    assert [m["data"]["type"] for m in fcm_fake.messages_for("tok-busy")] == ["device", "conflict"]
    assert clients.db.push_deliveries.find_one({"device_id": busy, "kind": "conflict"})["status"] == "sent"


def test_server_errors_retry_and_never_remove_the_token(clients, push_context, drain_push, fcm_fake, make_phone):
    fcm_fake.behave("tok", "INTERNAL", times=1)
    phone = make_phone("u1", "tok")
    emit(clients, "device.online", "u1", {"device_id": "nas", "online": True})
    relay_once(clients, push_context.lease)
    drain_push()
    doc = clients.db.push_deliveries.find_one({"device_id": phone})
    assert doc["status"] == "queued" and doc["attempts"] == 1
    assert clients.db.devices.find_one({"_id": phone})["push_token"] == "tok"
    assert tasks.sweep(clients, push_context.lease, now=doc["next_attempt_at"]) == 1
    drain_push()
    assert clients.db.push_deliveries.find_one({"device_id": phone})["status"] == "sent"
    assert len(fcm_fake.messages_for("tok")) == 1


def test_notify_inside_a_rolled_back_transaction_sends_nothing(clients, push_context, drain_push, fcm_fake,
                                                               make_phone):
    make_phone("u1", "tok")

    class Abort(Exception):
        pass

    def write(session):
        service.notify(clients.db, "u1", {"type": "conflict", "conflict_id": "c9", "node_id": "n9"}, session=session)
        raise Abort

    with pytest.raises(Abort):
        with clients.mongo.start_session() as session:
            session.with_transaction(write)
    service.notify(clients.db, "u1", {"type": "device", "device_id": "nas", "online": True})
    relay_once(clients, push_context.lease)
    drain_push()
    assert [m["data"]["type"] for m in fcm_fake.messages_for("tok")] == ["device"]


def test_relay_pass_is_idempotent_when_it_dies_half_way(clients, push_context, drain_push, fcm_fake, make_phone):
    make_phone("u1", "tok")
    event_id = emit(clients, "conflict.created", "u1", {"conflict_id": "c1", "node_id": "n1"})
    event = clients.db.outbox.find_one({"_id": event_id})
    # a relay recorded the deliveries, then died before enqueueing or marking the event done
    service.fan_out(clients.db, clients.redis, clients.redis_keys, [event], push_context.lease)
    assert relay_once(clients, push_context.lease) == 1
    drain_push()
    assert clients.db.push_deliveries.count_documents({}) == 1
    assert fcm_fake.messages_for("tok") == []  # its lease still holds it: no second copy now...
    assert tasks.sweep(clients, push_context.lease, now=utcnow() + push_context.lease) == 1
    drain_push()
    assert len(fcm_fake.messages_for("tok")) == 1  # ...and exactly one once the lease is over


def test_stale_tokens_are_swept_after_270_days(clients, make_phone):
    old = make_phone("u1", "tok-old")
    fresh = make_phone("u1", "tok-fresh")
    clients.db.devices.update_one({"_id": old}, {"$set": {"token_updated_at": utcnow() - timedelta(days=271)}})
    clients.db.devices.update_one({"_id": fresh}, {"$set": {"token_updated_at": utcnow() - timedelta(days=269)}})
    assert registry.sweep_stale_tokens(clients.db) == 1
    assert "push_token" not in clients.db.devices.find_one({"_id": old})
    assert clients.db.devices.find_one({"_id": fresh})["push_token"] == "tok-fresh"


def test_expired_messages_fail_instead_of_arriving_late(clients, push_context, drain_push, fcm_fake, make_phone):
    fcm_fake.behave("tok", "UNAVAILABLE", times=1)
    phone = make_phone("u1", "tok")
    emit(clients, "pairing.status", "u1", {"session_id": "s1", "status": "waiting", "serial": "SN"})
    relay_once(clients, push_context.lease)
    drain_push()
    later = utcnow() + timedelta(seconds=service.KINDS["pairing"].ttl_seconds + 1)
    assert tasks.sweep(clients, push_context.lease, now=later) == 1
    messages = clients.queue(tasks.QUEUE).jobs[0].args[0]
    tasks.deliver(push_context, messages, now=later)
    clients.queue(tasks.QUEUE).empty()
    doc = clients.db.push_deliveries.find_one({"device_id": phone})
    assert doc["status"] == "failed" and doc["reason"].startswith("expired")
    assert fcm_fake.messages_for("tok") == []


def test_relay_leaves_unknown_event_types_pending_and_routes_registered_ones(clients, push_context, monkeypatch):
    from push import relay

    foreign = emit(clients, "example.unhandled", "u1", {"sid": "s1"})
    assert relay_once(clients, push_context.lease) == 0
    assert clients.db.outbox.find_one({"_id": foreign})["status"] == "pending"  # left for whoever handles it

    monkeypatch.setitem(relay.EVENT_JOBS, "example.unhandled", ("runtime.ids:new_id", "default"))
    assert relay_once(clients, push_context.lease) == 1
    assert clients.db.outbox.find_one({"_id": foreign})["status"] == "done"
    job = clients.queue("default").jobs[0]
    assert job.func_name == "runtime.ids.new_id" and job.args[0]["payload"] == {"sid": "s1"}


def test_of_two_statuses_in_one_batch_only_the_newest_goes(clients, push_context, drain_push, fcm_fake, make_phone):
    """FCM may reorder a batch; a phone must never get 'waiting' after 'done'."""
    make_phone("u1", "tok")
    emit(clients, "pairing.status", "u1", {"session_id": "s1", "status": "waiting", "serial": "SN"})
    emit(clients, "pairing.status", "u1", {"session_id": "s1", "status": "done", "serial": "SN"})
    relay_once(clients, push_context.lease)
    drain_push()
    assert [m["data"]["status"] for m in fcm_fake.messages_for("tok")] == ["done"]
    older = clients.db.push_deliveries.find_one({"data.status": "waiting"})
    assert older["status"] == "failed" and older["reason"].startswith("superseded")


def test_a_malformed_event_does_not_block_the_outbox(clients, push_context, drain_push, fcm_fake, make_phone):
    make_phone("u1", "tok")
    bad = emit(clients, "conflict.created", "u1", {"node_id": "n1"})  # no conflict_id
    worse = emit(clients, "push.notify", "u1", {"message": {"type": "sync", "cursor": "not-a-cursor"}})
    emit(clients, "device.online", "u1", {"device_id": "nas", "online": True})
    assert relay_once(clients, push_context.lease) == 3
    drain_push()
    assert [m["data"]["type"] for m in fcm_fake.messages_for("tok")] == ["device"]
    assert clients.db.outbox.count_documents({"_id": {"$in": [bad, worse]}, "status": "done"}) == 2


def test_a_delivery_no_worker_ever_confirms_is_given_up(clients, push_context, make_phone):
    make_phone("u1", "tok")
    emit(clients, "device.online", "u1", {"device_id": "nas", "online": True})
    relay_once(clients, push_context.lease)
    now = utcnow()
    for _ in range(tasks.MAX_RESENDS):  # every job is lost before recording anything
        clients.queue(tasks.QUEUE).empty()
        now += push_context.lease + timedelta(seconds=1)
        assert tasks.sweep(clients, push_context.lease, now=now) == 1
    clients.queue(tasks.QUEUE).empty()
    now += push_context.lease + timedelta(seconds=1)
    assert tasks.sweep(clients, push_context.lease, now=now) == 0
    doc = clients.db.push_deliveries.find_one({})
    assert doc["status"] == "failed" and doc["reason"].startswith("gave up")
    clients.queue(tasks.QUEUE).empty()


def test_a_backlog_waiting_in_redis_is_not_sent_twice(clients, push_context, drain_push, fcm_fake, make_phone):
    """Leases run out while jobs still wait in the queue: that is a backlog, not a loss."""
    make_phone("u1", "tok")
    emit(clients, "conflict.created", "u1", {"conflict_id": "c1", "node_id": "n1"})
    relay_once(clients, push_context.lease)
    later = utcnow() + push_context.lease + timedelta(seconds=1)
    assert tasks.sweep(clients, push_context.lease, now=later) == 0
    assert clients.queue(tasks.QUEUE).count == 1
    drain_push()
    assert len(fcm_fake.messages_for("tok")) == 1


def test_the_relay_wakes_on_an_outbox_insert_of_a_type_it_carries(clients):
    from push.relay import carried_types

    waker = changes.outbox_doorbell(clients.db, carried_types())
    try:
        assert waker.wait(0.3) is False
        emit(clients, "some.other-type", "u1", {})  # nobody's push: no wake
        assert waker.wait(0.3) is False
        emit(clients, "conflict.created", "u1", {"conflict_id": "c1", "node_id": "n1"})
        assert waker.wait(10) is True
    finally:
        waker.close()


def test_next_due_is_the_earliest_queued_lease(clients):
    assert tasks.next_due(clients.db) is None
    now = utcnow().replace(microsecond=0)
    clients.db.push_deliveries.insert_many([
        {"_id": "d1", "status": "queued", "lease_until": now + timedelta(seconds=5)},
        {"_id": "d2", "status": "queued", "lease_until": now + timedelta(seconds=2)},
        {"_id": "d3", "status": "sent", "lease_until": now}])
    assert tasks.next_due(clients.db) == now + timedelta(seconds=2)
