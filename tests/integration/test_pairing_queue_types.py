"""CONTRACT §4: the device owns `device.<serial>` (classic or quorum) and the server pairs with whichever exists.

Real broker, real listener, the real NAS agent process, the gateway's API: a device that declares its queue
first (classic, exactly as §4 describes it, or quorum), and a device whose queue the server had to create.
"""

from __future__ import annotations

import pytest

from runtime import amqp
from tests.fixtures.pairing import broker_queue_type, pairing_env_for, unique_serial, wait_until


@pytest.fixture
def env(env):
    # roomy deadlines: in the server-first case the agent starts after the request was sent
    return pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=20, confirm=40)


def _pair(client, user, serial, agent) -> str:
    started = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers)
    assert started.status_code == 201, started.json
    assert started.json["status"] == "start"
    sid = started.json["session_id"]
    waiting = client.get(f"/pairing/v1/sessions/{sid}?wait=20&since=start", headers=user.headers)
    assert waiting.json["status"] == "waiting", waiting.json
    wait_until(lambda: sid in agent.led, what="the LED to blink")
    agent.press()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=20&since=waiting", headers=user.headers)
    assert done.json["status"] == "done", done.json
    wait_until(lambda: agent.led == "paired", what="the agent to hear pair.completed")
    return done.json["device_id"]


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_device_that_declared_its_queue_first_pairs(client, clients, settings, make_user, listener, nas_agent,
                                                      queue_type):
    serial = unique_serial(f"Q{queue_type[0].upper()}")
    agent = nas_agent(serial, "--queue-type", queue_type)  # declared (and consuming) before the server sees it
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what="hello")
    user = make_user()

    device_id = _pair(client, user, serial, agent)

    # the server used the device's queue as it was, and its publisher kept working afterwards
    assert broker_queue_type(settings.amqp_url, f"device.{serial}") == queue_type
    assert client.delete(f"/devices/v1/devices/{device_id}", headers=user.headers).status_code == 204
    wait_until(lambda: agent.led == "unpaired", what="the agent to hear unpaired")
    assert _pair(client, user, serial, agent) == device_id
    assert "PRECONDITION_FAILED" not in agent.log() and "inequivalent arg" not in agent.log()


@pytest.mark.parametrize("device_wants", ["classic", "quorum"])
def test_the_server_first_keeps_the_request_until_the_device_comes(client, clients, settings, make_user, listener,
                                                                   raw_device, nas_agent, device_wants):
    serial = unique_serial("QS")
    raw_device(serial).send("hello", model="M", firmware="1")  # said hello, has not declared its queue yet
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what="hello")
    user = make_user()
    started = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers)
    assert started.status_code == 201, started.json
    sid = started.json["session_id"]
    # the server created the queue with no arguments (the broker's default, classic): the request waits there
    assert broker_queue_type(settings.amqp_url, f"device.{serial}") == "classic"
    assert clients.amqp.queue_depth(f"device.{serial}") == 1

    agent = nas_agent(serial, "--queue-type", device_wants)  # a quorum device finds a classic queue: uses it
    waiting = client.get(f"/pairing/v1/sessions/{sid}?wait=20&since=start", headers=user.headers)
    assert waiting.json["status"] == "waiting", waiting.json
    wait_until(lambda: sid in agent.led, what="the LED to blink")
    agent.press()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=20&since=waiting", headers=user.headers)
    assert done.json["status"] == "done", done.json
    wait_until(lambda: agent.led == "paired", what="the agent to hear pair.completed")
    assert broker_queue_type(settings.amqp_url, f"device.{serial}") == "classic"


def test_a_device_that_redeclares_its_queue_with_another_type_still_gets_messages(clients, settings):
    """The server checked the queue once on its connection; the device then deleted it and redeclared it as
    quorum without binding it: the next message is unroutable once, the server binds again and it arrives."""
    serial = unique_serial("QR")
    name = f"device.{serial}"
    publisher = clients.amqp
    publisher.publish_to_device(serial, {"type": "unpaired"})
    assert broker_queue_type(settings.amqp_url, name) == "classic"

    connection = amqp.connect(settings.amqp_url)
    try:
        channel = connection.channel()
        channel.queue_delete(name)
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        connection.close()

    publisher.publish_to_device(serial, {"type": "unpaired"})
    assert broker_queue_type(settings.amqp_url, name) == "quorum"
    assert [rk for rk, _ in amqp.fetch_messages(settings.amqp_url, name)] == [name]
    clients.amqp.close_quietly()
