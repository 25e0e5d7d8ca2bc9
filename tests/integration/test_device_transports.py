"""The device protocol over both transports: the same NAS agent, once over AMQP and once over MQTT (RabbitMQ's
MQTT plugin), through the same pairing flow, package report and change, and going offline."""

from __future__ import annotations

import json
import signal

import pytest

from tests.fixtures.mqtt import mqtt_url_for
from tests.fixtures.pairing import broker_queue_type, pairing_env_for, unique_serial, wait_until


@pytest.fixture
def env(env):
    return {**pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=5, confirm=20), "PCLOUD_PACKAGE_ACK_SECONDS": "10"}


@pytest.fixture(params=["amqp", "mqtt"])
def transport(request, settings):
    """The agent's extra arguments for one transport."""
    if request.param == "amqp":
        return request.param, ()
    port = request.getfixturevalue("mqtt_port")
    return request.param, ("--mqtt-url", mqtt_url_for(settings.amqp_url, port))


def _events(clients, device_id, kind):
    return clients.db.events.count_documents({"type": f"devices.device.{kind}", "subject": device_id})


def test_hello_pair_report_configure_and_go_offline(transport, client, clients, settings, make_user, listener,
                                                    nas_agent):
    name, extra = transport
    serial = unique_serial(f"NAS-{name.upper()}")
    agent = nas_agent(serial, *extra)
    device = wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what="hello")
    assert device["transport"] == name and device["online"] is True

    user = make_user(name="Alice")
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    assert client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json["status"] \
        == "waiting"
    wait_until(lambda: agent.led.startswith("blinking"), what="the LED to blink")
    agent.press()
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=user.headers).json
    assert done["status"] == "done", done
    device_id = done["device_id"]
    wait_until(lambda: agent.led == "paired", what="pair.completed")

    packages = wait_until(lambda: client.get(f"/devices/v1/devices/{device_id}/packages",
                                             headers=user.headers).json["items"], what="packages.report")
    assert sorted(p["name"] for p in packages) == ["backup", "media-server"]
    put = client.put(f"/devices/v1/devices/{device_id}/packages/backup/settings", json={"hour": 4, "enabled": True},
                     headers=user.headers)
    assert put.status_code == 202, put.json
    applied = wait_until(lambda: (p := client.get(f"/devices/v1/devices/{device_id}/packages/backup",
                                                  headers=user.headers).json)["change"]["state"] != "pending" and p,
                         what="the ack")
    assert applied["change"]["state"] == "applied" and applied["values"]["hour"] == 4
    saved = json.loads((agent.state_dir / f"{serial}.packages.json").read_text())
    assert saved["values"]["backup"]["hour"] == 4
    if name == "mqtt":  # its queue is the broker's MQTT session: the server never made a device.<serial> queue
        assert broker_queue_type(settings.amqp_url, f"device.{serial}") is None

    # stopping cleanly says offline at once (not after 90 s of silence)
    agent.proc.send_signal(signal.SIGTERM)
    agent.proc.wait(timeout=20)
    wait_until(lambda: not clients.db.devices.find_one({"_id": device_id})["online"], what="offline")
    wait_until(lambda: _events(clients, device_id, "offline") == 1, what="the offline event")
    listed = client.get("/devices/v1/devices", headers=user.headers).json["items"]
    assert [d["online"] for d in listed if d["device_id"] == device_id] == [False]


def test_a_lost_mqtt_device_is_offline_at_once_by_its_last_will(client, clients, settings, make_user, listener,
                                                                nas_agent, mqtt_port):
    serial = unique_serial("NAS-WILL")
    agent = nas_agent(serial, "--mqtt-url", mqtt_url_for(settings.amqp_url, mqtt_port), "--auto-press", "0.1")
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what="hello")
    user = make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    status = "start"
    while status in ("start", "waiting"):
        answer = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since={status}", headers=user.headers).json
        status = answer["status"]
    device_id = answer["device_id"]
    assert clients.db.devices.find_one({"_id": device_id})["online"] is True

    agent.proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the will
    agent.proc.wait(timeout=10)
    wait_until(lambda: not clients.db.devices.find_one({"_id": device_id})["online"], timeout=15,
               what="offline by the last will")
    assert _events(clients, device_id, "offline") == 1
    # and back: the next start says hello over MQTT again
    nas_agent(serial, "--mqtt-url", mqtt_url_for(settings.amqp_url, mqtt_port))
    wait_until(lambda: clients.db.devices.find_one({"_id": device_id})["online"], what="online again")
    wait_until(lambda: _events(clients, device_id, "online") == 1, what="the online event")
