"""End to end with the real producers: mobile ops over HTTP and the pairing service write outbox events,
the relay and worker turn them into FCM requests at the stand-in."""

from __future__ import annotations

from datetime import timedelta

from mobile_api import tree
from push.relay import relay_once
from runtime.ids import utcnow


def register(client, user, name, token):
    resp = client.post("/mobile/v1/devices", json={"name": name, "platform": "android", "push_token": token},
                       headers=user.headers)
    assert resp.status_code == 201
    return resp.get_json()["device_id"]


def test_an_edit_on_one_phone_tickles_the_others(client, make_user, clients, push_context, drain_push, fcm_fake):
    user = make_user()
    maker = register(client, user, "maker", "tok-maker")
    register(client, user, "watcher", "tok-watcher")
    root = tree.ensure_root(clients.db, user.id)
    resp = client.post("/mobile/v1/ops", headers=user.headers, json={"device_id": maker, "ops": [
        {"op_id": "op-1", "type": "create_folder", "parent_id": root["_id"], "name": "Photos"}]})
    assert resp.status_code == 200 and resp.get_json()["results"][0]["status"] == "applied"
    cursor = resp.get_json()["cursor"]

    relay_once(clients, push_context.lease)
    drain_push()
    assert fcm_fake.messages_for("tok-maker") == []  # not to the device that made the change
    tickles = fcm_fake.messages_for("tok-watcher")
    assert [m["data"] for m in tickles] == [{"type": "sync", "cursor": cursor}]
    assert tickles[0]["android"]["collapse_key"] == "sync"
    # the cursor is one the changes feed accepts
    changes = client.get(f"/mobile/v1/changes?cursor={cursor}", headers=user.headers)
    assert changes.status_code == 200 and changes.get_json()["changes"] == []


def test_pairing_and_device_status_reach_the_phone(make_user, clients, push_context, drain_push, fcm_fake, client):
    from functions.pairing.service import PairingService

    user = make_user()
    register(client, user, "phone", "tok-phone")
    svc = PairingService.from_clients(clients)
    serial = "SN-PUSH-1"
    svc.hello(serial, "model", "1.0")
    session = svc.start(user.id, serial)
    svc.on_waiting(serial, session["session_id"])
    relay_once(clients, push_context.lease)
    drain_push()
    svc.on_confirmed(serial, session["session_id"])
    relay_once(clients, push_context.lease)
    drain_push()

    got = [m for m in fcm_fake.messages_for("tok-phone") if m["data"]["type"] == "pairing"]
    assert [m["data"]["status"] for m in got] == ["waiting", "done"]
    assert all(m["data"]["session_id"] == session["session_id"] for m in got)
    assert "button" in got[0]["notification"]["body"].lower()
    assert "notification" not in got[1]

    nas = clients.db.devices.find_one({"kind": "nas", "serial": serial})
    clients.db.devices.update_one({"_id": nas["_id"]}, {"$set": {"last_seen": utcnow() - timedelta(minutes=5)}})
    assert svc.mark_offline() == 1
    relay_once(clients, push_context.lease)
    drain_push()
    device = [m["data"] for m in fcm_fake.messages_for("tok-phone") if m["data"]["type"] == "device"]
    assert device == [{"type": "device", "device_id": nas["_id"], "online": "false"}]
