"""Pairing survives the broker dropping every connection and the listener restarting mid-pairing."""

from __future__ import annotations

import pytest

from tests.fixtures.pairing import close_broker_connections, pairing_env_for, unique_serial, wait_until


@pytest.fixture
def env(env):
    # dropping connections with rabbitmqctl takes seconds on a busy machine: leave the person time to press.
    # The worker's vhost with unique serials: creating a vhost per test costs seconds.
    return pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=10, confirm=40)


def _device(clients, serial):
    return wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what=f"hello of {serial}")


def test_connection_dropped_mid_pairing_still_completes(client, clients, make_user, listener, nas_agent, settings):
    serial = unique_serial("NAS")
    agent = nas_agent(serial)
    _device(clients, serial)
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json["status"] == \
        "waiting"

    assert close_broker_connections(settings.amqp_url) >= 2  # listener, agent and publishers all dropped
    agent.press()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=20&since=waiting", headers=user.headers).json
    assert done["status"] == "done", (done, agent.log())
    wait_until(lambda: agent.led == "paired", timeout=15, what="pair.completed after reconnecting")


def test_listener_restart_mid_pairing_still_completes(client, clients, make_user, listener, raw_device):
    device = raw_device()
    device.send("hello", model="M", firmware="1")
    _device(clients, device.serial)
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": device.serial}, headers=user.headers).json["session_id"]
    device.send("pair.waiting", session_id=sid)
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json["status"] == \
        "waiting"
    listener.stop()
    device.send("pair.confirmed", session_id=sid)  # waits in the durable queue
    listener.start()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=user.headers).json
    assert done["status"] == "done"
    assert clients.db.devices.find_one({"serial": device.serial})["owner"] == user.id


def test_an_agent_restarted_mid_pairing_keeps_its_pending_pairing(client, clients, make_user, listener, nas_agent):
    serial = unique_serial("NAS")
    agent = nas_agent(serial)
    _device(clients, serial)
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json["status"] == \
        "waiting"
    wait_until(lambda: agent.led == f"blinking {sid}", what="the LED to blink")
    agent.proc.terminate()  # power cut after the request was acked: only the agent's state file remembers it
    agent.proc.wait(timeout=15)

    again = nas_agent(serial)
    assert f"resuming pending pairing {sid}" in again.log()
    assert again.led == f"blinking {sid}"
    again.press()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=20&since=waiting", headers=user.headers).json
    assert done["status"] == "done", (done, again.log())
    wait_until(lambda: again.led == "paired", timeout=15, what="pair.completed")
