"""PairingService on real Redis, MongoDB and RabbitMQ, with a clock the test moves (no listener process)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from functions.pairing.listener import DeviceEventsConsumer
from functions.pairing.service import PairingService, Timing
from runtime import amqp
from runtime.amqp import Reject
from runtime.errors import BadRequest, Conflict, NotFound, RateLimited
from runtime.ids import utcnow
from tests.fixtures.pairing import unique_serial


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def svc(clients, clock):
    clients.ensure_indexes()
    return PairingService(clients.db, clients.mongo, clients.redis, clients.redis_keys, clients.amqp,
                          Timing(ack_seconds=15, confirm_seconds=120), clock=clock, backlog=lambda: False)


@pytest.fixture
def nas(svc):
    def make(owner: str | None = None) -> str:
        serial = unique_serial()
        svc.hello(serial, "Model", "1.0")
        if owner:
            svc.db.devices.update_one({"serial": serial}, {"$set": {"owner": owner, "paired_at": utcnow()}})
        return serial

    return make


def _events(clients, sid):
    return [e["payload"]["status"] for e in clients.db.outbox.find({"type": "pairing.status",
                                                                    "payload.session_id": sid}).sort("created_at", 1)]


def _device_messages(settings, serial):
    return [json.loads(body) for _, body in amqp.fetch_messages(settings.amqp_url, f"device.{serial}")]


@pytest.mark.parametrize("serial", ["", "a.b", "#", "x" * 65, 12, None, "-lead", "sp ace", "ünï"])
def test_start_refuses_a_malformed_serial(svc, serial):
    with pytest.raises(BadRequest) as err:
        svc.start("u1", serial)
    assert err.value.code == "invalid_serial"


def test_start_needs_a_device_that_said_hello_and_is_not_someone_elses(svc, nas):
    with pytest.raises(NotFound) as err:
        svc.start("u1", unique_serial())
    assert err.value.code == "device_not_found"
    serial = nas(owner="someone-else")
    with pytest.raises(Conflict) as err:
        svc.start("u1", serial)
    assert err.value.code == "device_paired_elsewhere"


def test_start_sends_pair_request_and_answers_start(svc, nas, settings, clients):
    clients.db.users.insert_one({"_id": "u1", "name": "Alice"})
    serial = nas()
    got = svc.start("u1", serial)
    assert got["status"] == "start" and got["serial"] == serial and len(got["session_id"]) == 24
    sent = _device_messages(settings, serial)
    assert sent == [{"type": "pair.request", "session_id": got["session_id"], "user": {"id": "u1", "name": "Alice"},
                     "expires_at": got["expires_at"]}]
    assert svc.get("u1", got["session_id"]) == {"session_id": got["session_id"], "serial": serial, "status": "start"}


def test_sessions_belong_to_their_owner(svc, nas):
    sid = svc.start("u1", nas())["session_id"]
    for owner, ident in (("u2", sid), ("u1", "0" * 24), ("u1", "not-an-id")):
        with pytest.raises(NotFound):
            svc.get(owner, ident)


def test_ten_starts_per_minute_then_429_with_retry_after(svc, nas, clock):
    serial = nas()
    for _ in range(10):
        svc.start("u1", serial)  # each restart supersedes the previous one
    with pytest.raises(RateLimited) as err:
        svc.start("u1", serial)
    assert 1 <= int(err.value.headers["Retry-After"]) <= 60
    clock.advance(61)
    assert svc.start("u1", serial)["status"] == "start"


def test_at_most_five_active_sessions_per_user(svc, nas):
    sids = [svc.start("u1", nas())["session_id"] for _ in range(5)]
    with pytest.raises(Conflict) as err:
        svc.start("u1", nas())
    assert err.value.code == "too_many_sessions"
    svc.on_rejected(svc.get("u1", sids[0])["serial"], sids[0], "user said no")  # one finishes: a slot frees up
    assert svc.start("u1", nas())["status"] == "start"


def test_restart_supersedes_own_session_but_another_user_must_wait(svc, nas, clients):
    serial = nas()
    first = svc.start("u1", serial)["session_id"]
    with pytest.raises(Conflict) as err:
        svc.start("u2", serial)
    assert err.value.code == "pairing_in_progress"
    second = svc.start("u1", serial)["session_id"]
    assert svc.get("u1", first) == {"session_id": first, "serial": serial, "status": "failed", "reason": "superseded"}
    assert svc.get("u1", second)["status"] == "start"
    assert _events(clients, first) == ["failed"]


def test_the_happy_path_and_late_messages_change_nothing(svc, nas, clients, settings):
    serial = nas()
    sid = svc.start("u1", serial)["session_id"]
    svc.on_waiting(serial, sid)
    assert svc.get("u1", sid)["status"] == "waiting"
    svc.on_confirmed(serial, sid)
    done = svc.get("u1", sid)
    device = clients.db.devices.find_one({"serial": serial})
    assert done == {"session_id": sid, "serial": serial, "status": "done", "device_id": device["_id"]}
    assert device["owner"] == "u1" and device["paired_at"] is not None
    for late in (lambda: svc.on_waiting(serial, sid), lambda: svc.on_rejected(serial, sid, "x"),
                 lambda: svc.on_confirmed(serial, sid)):
        late()
        assert svc.get("u1", sid) == done
    assert _events(clients, sid) == ["waiting", "done"]
    kinds = [m["type"] for m in _device_messages(settings, serial)]
    assert kinds == ["pair.request", "pair.completed", "pair.completed"]  # a repeated press is answered again


def test_ack_timeout_fails_and_confirm_timeout_expires(svc, nas, clock, clients):
    offline = svc.start("u1", nas())["session_id"]
    clock.advance(15)
    assert svc.get("u1", offline)["reason"] == "device_offline"
    assert svc.get("u1", offline)["status"] == "failed"

    serial = nas()
    sid = svc.start("u1", serial)["session_id"]
    svc.on_waiting(serial, sid)
    clock.advance(60)
    assert svc.sweep_deadlines() == 0
    clock.advance(61)
    assert svc.sweep_deadlines() == 1  # nobody polled
    assert svc.get("u1", sid)["status"] == "expired"
    svc.on_confirmed(serial, sid)  # pressed after expiry
    assert svc.get("u1", sid)["status"] == "expired"
    assert clients.db.devices.find_one({"serial": serial})["owner"] is None
    assert _events(clients, sid) == ["waiting", "expired"]


def test_our_own_backlog_does_not_fail_a_device_that_answered_in_time(clients, nas, clock):
    backlog = {"now": True}
    svc = PairingService(clients.db, clients.mongo, clients.redis, clients.redis_keys, clients.amqp,
                         Timing(ack_seconds=15, confirm_seconds=120), clock=clock, backlog=lambda: backlog["now"])
    late = svc.start("u1", nas())["session_id"]
    serial = nas()
    slow = svc.start("u1", serial)["session_id"]
    clock.advance(20)  # past the ack deadline, while device events still wait in the broker
    assert svc.sweep_deadlines() == 0
    assert svc.get("u1", slow)["status"] == "start"
    svc.on_waiting(serial, slow)  # its answer was in that backlog
    assert svc.get("u1", slow)["status"] == "waiting"
    clock.advance(11)  # a whole extra ack period: no backlog excuses that
    assert svc.sweep_deadlines() == 1
    assert svc.get("u1", late) == {"session_id": late, "serial": svc.get("u1", late)["serial"], "status": "failed",
                                   "reason": "device_offline"}


def test_the_backlog_probe_reads_the_broker(clients):
    from functions.pairing.service import BrokerBacklog

    assert BrokerBacklog(clients.amqp)() in (True, False)  # the worker vhost's events queue exists and answers
    clients.amqp.ping()
    assert clients.amqp.queue_depth(amqp.DEAD_LETTER_QUEUE) >= 0


def test_a_press_that_arrives_after_expires_at_is_expired_even_before_a_sweep(svc, nas, clock, clients):
    serial = nas()
    sid = svc.start("u1", serial)["session_id"]
    svc.on_waiting(serial, sid)
    clock.advance(121)
    svc.on_confirmed(serial, sid)
    assert svc.get("u1", sid)["status"] == "expired"
    assert clients.db.devices.find_one({"serial": serial})["owner"] is None


def test_device_rejection_fails_with_its_reason(svc, nas):
    serial = nas()
    sid = svc.start("u1", serial)["session_id"]
    svc.on_rejected(serial, sid, "  storage full " + "x" * 100)
    got = svc.get("u1", sid)
    assert got["status"] == "failed" and got["reason"].startswith("storage full") and len(got["reason"]) == 64


def test_claim_refuses_a_device_someone_else_took_meanwhile(svc, nas, clients):
    serial = nas()
    sid = svc.start("u1", serial)["session_id"]
    clients.db.devices.update_one({"serial": serial}, {"$set": {"owner": "u2"}})
    svc.on_confirmed(serial, sid)
    assert svc.get("u1", sid) == {"session_id": sid, "serial": serial, "status": "failed",
                                  "reason": "paired_elsewhere"}
    assert clients.db.devices.find_one({"serial": serial})["owner"] == "u2"


def test_wait_answers_at_once_when_status_differs_and_wakes_on_a_change(svc, nas):
    serial = nas()
    sid = svc.start("u1", serial)["session_id"]
    assert svc.wait("u1", sid, "waiting", 10)["status"] == "start"  # differs already
    assert svc.wait("u1", sid, None, 10)["status"] == "start"  # nothing to compare with

    threading.Timer(0.3, svc.on_waiting, args=(serial, sid)).start()
    began = time.monotonic()
    assert svc.wait("u1", sid, "start", 10)["status"] == "waiting"
    assert time.monotonic() - began < 10
    assert svc.wait("u1", sid, "waiting", 0.2)["status"] == "waiting"  # nothing happened: answers at the end


def test_wait_sees_its_own_deadline_pass_without_a_sweeper(clients, nas):
    svc = PairingService(clients.db, clients.mongo, clients.redis, clients.redis_keys, clients.amqp,
                         Timing(ack_seconds=1, confirm_seconds=5), backlog=lambda: False)
    sid = svc.start("u1", nas())["session_id"]
    got = svc.wait("u1", sid, "start", 10)
    assert got["status"] == "failed" and got["reason"] == "device_offline"


def test_hello_registers_once_and_heartbeats_keep_a_device_online(svc, clients, clock):
    serial = unique_serial()
    first = svc.hello(serial, "Model X", "2.1")
    assert svc.hello(serial, "Model X", "2.2") == first
    doc = clients.db.devices.find_one({"serial": serial})
    assert doc["_id"] == first and doc["kind"] == "nas" and doc["owner"] is None and doc["online"] is True
    assert doc["firmware"] == "2.2" and doc["name"]
    assert clients.db.devices.count_documents({"serial": serial}) == 1


def test_silent_devices_go_offline_after_90s_and_come_back_with_events(svc, clients, clock, nas):
    serial = nas(owner="u1")
    quiet_unowned = nas()
    clock.advance(89)
    assert svc.mark_offline() == 0
    clock.advance(2)
    assert svc.mark_offline() == 2
    doc = clients.db.devices.find_one({"serial": serial})
    assert doc["online"] is False
    assert clients.db.devices.find_one({"serial": quiet_unowned})["online"] is False
    svc.hello(serial, "Model", "1.0")
    changes = [(e["user_id"], e["payload"]) for e in clients.db.outbox.find({"type": "device.online"})
               .sort("created_at", 1)]
    assert changes == [("u1", {"device_id": doc["_id"], "online": False}),
                       ("u1", {"device_id": doc["_id"], "online": True})]


@pytest.mark.parametrize("routing_key,message", [
    ("event.A1.hello", {"type": "hello", "serial": "B2"}),
    ("event.A1.hello", {"type": "pair.waiting", "serial": "A1"}),
    ("event.A1.reboot", {"type": "reboot", "serial": "A1"}),
    ("event.A.1.hello", {"type": "hello", "serial": "A.1"}),
    ("device.A1", {"type": "hello", "serial": "A1"}),
    ("event.A1.pair.waiting", {"type": "pair.waiting", "serial": "A1", "session_id": 5}),
    ("event.A1.pair.confirmed", {"type": "pair.confirmed", "serial": "A1"}),
])
def test_listener_rejects_what_can_never_be_handled(svc, routing_key, message):
    with pytest.raises(Reject):
        DeviceEventsConsumer(svc).consume(message, None, routing_key)


def test_listener_ignores_answers_for_unknown_sessions(svc, clients):
    serial = unique_serial()
    consumer = DeviceEventsConsumer(svc)
    consumer.consume({"type": "hello", "serial": serial, "model": "M", "firmware": "1"}, None, f"event.{serial}.hello")
    consumer.consume({"type": "pair.confirmed", "serial": serial, "session_id": "a" * 24}, None,
                     f"event.{serial}.pair.confirmed")
    assert clients.db.devices.find_one({"serial": serial})["owner"] is None
