"""Pairing over the real broker: the listener in a thread, the real NAS agent as a process, the gateway."""

from __future__ import annotations

import threading

import pytest

from runtime import amqp
from tests.fixtures.pairing import pairing_env_for, unique_serial, wait_until


@pytest.fixture
def env(env):
    # the worker's vhost (unique serials keep tests apart): creating a vhost per test costs seconds
    return pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=2, confirm=5)


def _device(clients, serial):
    return wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what=f"hello of {serial}")


def _statuses(clients, session_id):
    return [e["payload"]["status"] for e in clients.db.outbox.find({"type": "pairing.status",
                                                                    "payload.session_id": session_id})
            .sort("created_at", 1)]


def test_full_flow_with_the_agent_process(client, clients, make_user, listener, nas_agent):
    serial = unique_serial("NAS")
    agent = nas_agent(serial)
    user = make_user(name="Alice")
    _device(clients, serial)

    started = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers)
    assert started.status_code == 201, started.json
    body = started.json
    assert body["status"] == "start" and body["serial"] == serial and body["expires_at"].endswith("Z")
    sid = body["session_id"]

    waiting = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers)
    assert waiting.json["status"] == "waiting"
    wait_until(lambda: agent.led.startswith("blinking"), what="the LED to blink")
    assert sid in agent.led

    agent.press()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=user.headers)
    assert done.json["status"] == "done", done.json
    device_id = done.json["device_id"]

    listed = client.get("/devices/v1/devices", headers=user.headers).json
    nas = [d for d in listed["items"] if d["kind"] == "nas"]
    assert [d["device_id"] for d in nas] == [device_id]
    assert nas[0]["serial"] == serial and nas[0]["online"] is True
    assert nas[0]["paired_at"] and nas[0]["last_seen"] and nas[0]["name"]
    assert listed["next_cursor"] is None
    wait_until(lambda: agent.led == "paired", what="the agent to hear pair.completed")
    # the waiting event is written off the hot path (listener Announcer): its order against done may vary
    wait_until(lambda: sorted(_statuses(clients, sid)) == ["done", "waiting"], what="both events")
    event = clients.db.outbox.find_one({"type": "pairing.status", "payload.status": "done"})
    assert event["user_id"] == user.id and event["payload"]["device_id"] == device_id

    # unpair: the NAS is told, the list forgets it, and another user may pair it now
    assert client.delete(f"/devices/v1/devices/{device_id}", headers=user.headers).status_code == 204
    wait_until(lambda: agent.led == "unpaired", what="the agent to hear unpaired")
    assert client.get("/devices/v1/devices", headers=user.headers).json["items"] == []
    other = make_user()
    assert client.post("/pairing/v1/sessions", json={"serial": serial}, headers=other.headers).status_code == 201


def test_offline_device_fails_after_the_ack_timeout_without_polling(client, clients, make_user, listener,
                                                                    raw_device):
    device = raw_device()
    device.send("hello", model="M", firmware="1")  # said hello once, then went quiet (nobody consumes its queue)
    _device(clients, device.serial)
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": device.serial}, headers=user.headers).json["session_id"]

    # nobody polls: the listener's sweeper moves it and writes the event
    wait_until(lambda: _statuses(clients, sid) == ["failed"], timeout=10, what="failed without a poll")
    got = client.get(f"/pairing/v1/sessions/{sid}", headers=user.headers).json
    assert got == {"session_id": sid, "serial": device.serial, "status": "failed", "reason": "device_offline"}
    # a late answer from the device changes nothing
    device.send("pair.waiting", session_id=sid)
    device.send("pair.confirmed", session_id=sid)
    device.send("hello", model="M", firmware="2")  # handled after the late answers (one queue, in order)
    wait_until(lambda: clients.db.devices.find_one({"serial": device.serial, "firmware": "2"}), what="hello")
    assert client.get(f"/pairing/v1/sessions/{sid}", headers=user.headers).json["status"] == "failed"
    assert clients.db.devices.find_one({"serial": device.serial})["owner"] is None


def test_nobody_presses_expires_and_a_late_press_changes_nothing(client, clients, make_user, listener, nas_agent,
                                                                 raw_device):
    serial = unique_serial("NAS")
    nas_agent(serial)
    _device(clients, serial)
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json["status"] == \
        "waiting"
    wait_until(lambda: "expired" in _statuses(clients, sid), timeout=12, what="expiry without a poll")
    assert client.get(f"/pairing/v1/sessions/{sid}", headers=user.headers).json["status"] == "expired"

    # the button pressed too late: the server keeps it expired and the device unowned
    late = raw_device(serial)
    late.send("pair.confirmed", session_id=sid)
    marker = raw_device(serial)
    marker.send("hello", model="after-press", firmware="1")  # processed after the press (one queue, in order)
    wait_until(lambda: clients.db.devices.find_one({"serial": serial, "model": "after-press"}), timeout=30,
               what="marker")
    assert client.get(f"/pairing/v1/sessions/{sid}", headers=user.headers).json["status"] == "expired"
    assert clients.db.devices.find_one({"serial": serial})["owner"] is None
    assert _statuses(clients, sid) == ["waiting", "expired"]


def test_two_users_racing_for_one_nas_exactly_one_wins(client, clients, make_user, listener, nas_agent, gateway):
    import requests

    serial = unique_serial("NAS")
    agent = nas_agent(serial)
    _device(clients, serial)
    users = [make_user(), make_user()]
    results = {}
    barrier = threading.Barrier(2)

    def start(user):
        barrier.wait(timeout=10)
        results[user.id] = requests.post(f"{gateway.url}/pairing/v1/sessions", json={"serial": serial},
                                         headers=user.headers, timeout=10)

    threads = [threading.Thread(target=start, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    codes = sorted(r.status_code for r in results.values())
    assert codes == [201, 409], {k: r.text for k, r in results.items()}
    winner = next(u for u in users if results[u.id].status_code == 201)
    loser = next(u for u in users if u is not winner)
    assert results[loser.id].json()["error"]["code"] == "pairing_in_progress"
    sid = results[winner.id].json()["session_id"]
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=winner.headers).json["status"] == \
        "waiting"
    agent.press()
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=winner.headers).json["status"] \
        == "done"
    assert clients.db.devices.find_one({"serial": serial})["owner"] == winner.id
    refused = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=loser.headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "device_paired_elsewhere"
    assert client.get("/devices/v1/devices", headers=loser.headers).json["items"] == []


def test_a_device_speaking_for_another_serial_is_dead_lettered(client, clients, make_user, listener, raw_device,
                                                               settings):
    victim = raw_device()
    victim.send("hello", model="M", firmware="1")
    _device(clients, victim.serial)
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": victim.serial}, headers=user.headers).json["session_id"]
    victim.send("pair.waiting", session_id=sid)
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json["status"] == \
        "waiting"

    attacker = raw_device()
    attacker.send("hello", model="M", firmware="1")
    _device(clients, attacker.serial)
    # its own routing key, the victim's serial in the body; and the victim's session under its own serial
    attacker.send("pair.confirmed", routing_serial=attacker.serial, session_id=sid, serial=victim.serial)
    attacker.send("pair.confirmed", session_id=sid)
    amqp.publish_bytes(settings.amqp_url, amqp.EVENTS_EXCHANGE, f"event.{attacker.serial}.hello", b"{not json")
    attacker.send("reboot")  # a type nobody knows
    dead: list = []

    def four_dead_letters():
        dead.extend(m for m in amqp.fetch_messages(settings.amqp_url, amqp.DEAD_LETTER_QUEUE)
                    if m[0].startswith(f"event.{attacker.serial}."))
        return len(dead) >= 4

    wait_until(four_dead_letters, timeout=10, what="four dead letters")
    assert {rk for rk, _ in dead} == {f"event.{attacker.serial}.pair.confirmed", f"event.{attacker.serial}.hello",
                                      f"event.{attacker.serial}.reboot"}
    # no state change, and the listener is still alive and well
    assert client.get(f"/pairing/v1/sessions/{sid}", headers=user.headers).json["status"] == "waiting"
    assert clients.db.devices.find_one({"serial": victim.serial})["owner"] is None
    victim.send("pair.confirmed", session_id=sid)
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=user.headers).json["status"] \
        == "done"

