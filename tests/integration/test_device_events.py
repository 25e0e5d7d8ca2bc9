"""devices.device.paired|unpaired|online|offline in the event log (CONTRACT §8), over the real broker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.pairing.service import PairingService
from tests.fixtures.pairing import pairing_env_for, wait_until


@pytest.fixture
def env(env):
    return pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=5, confirm=20)


def _device_events(client, user):
    return client.get("/events/v1?type=devices.device", headers=user.headers).json["items"]


def test_pairing_online_offline_and_unpairing_append_device_events(client, clients, make_user, listener,
                                                                    raw_device):
    device = raw_device()
    device.send("hello", model="M", firmware="1")
    found = wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": device.serial}),
                       what="hello")
    user, other = make_user(), make_user()
    sid = client.post("/pairing/v1/sessions", json={"serial": device.serial}, headers=user.headers).json["session_id"]
    device.send("pair.waiting", session_id=sid)
    device.send("pair.confirmed", session_id=sid)
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json
    if done["status"] != "done":
        done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since={done['status']}", headers=user.headers).json
    assert done["status"] == "done"
    paired = _device_events(client, user)
    assert [e["type"] for e in paired] == ["devices.device.paired"]
    assert paired[0]["subject"] == found["_id"] and paired[0]["data"]["device"]["serial"] == device.serial

    # silent for long enough → offline; the next hello → online
    clients.db.devices.update_one({"_id": found["_id"]}, {"$set": {"last_seen": found["last_seen"] -
                                                                    timedelta(minutes=10)}})
    assert PairingService.from_clients(clients).mark_offline() == 1
    device.send("hello", model="M", firmware="1")
    wait_until(lambda: len(_device_events(client, user)) == 3, what="the online event")
    assert client.delete(f"/devices/v1/devices/{found['_id']}", headers=user.headers).status_code == 204
    types = [e["type"].rsplit(".", 1)[1] for e in _device_events(client, user)]
    assert types == ["paired", "offline", "online", "unpaired"]
    assert _device_events(client, other) == []
