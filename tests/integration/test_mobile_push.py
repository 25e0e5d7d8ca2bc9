"""Conflicts arrive as pushes: an op the referee resolves over HTTP reaches the user's phones through the outbox,
the relay, the push worker and FCM (the local stand-in)."""

from __future__ import annotations

from functions.files import service as files
from push.relay import relay_once


def register(client, user, name, token):
    resp = client.post("/mobile/v1/devices", json={"name": name, "platform": "android", "push_token": token},
                       headers=user.headers)
    assert resp.status_code == 201
    return resp.get_json()["device_id"]


def ops(client, user, device_id, *batch):
    resp = client.post("/mobile/v1/ops", headers=user.headers, json={"device_id": device_id, "ops": list(batch)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["results"]


def test_a_conflict_is_pushed_to_the_phones(client, make_user, clients, push_context, drain_push, fcm_fake):
    user = make_user()
    laptop = register(client, user, "Laptop", "tok-laptop")
    phone = register(client, user, "Pixel", "tok-phone")
    root = files.get_root(clients.db, user.id)
    folder = ops(client, user, laptop, {"op_id": "c1", "type": "create_folder", "parent_id": root["_id"],
                                        "name": "Docs"})[0]["node"]
    ops(client, user, laptop, {"op_id": "r1", "type": "rename", "node_id": folder["id"], "name": "Papers",
                               "base_rev": folder["rev"]})
    deleted = ops(client, user, phone, {"op_id": "d1", "type": "delete", "node_id": folder["id"],
                                        "base_rev": folder["rev"]})[0]
    assert deleted["status"] == "conflict" and deleted["conflict"]["type"] == "delete_modified"

    relay_once(clients, push_context.lease)
    drain_push()
    for token in ("tok-laptop", "tok-phone"):
        pushed = [m for m in fcm_fake.messages_for(token) if m["data"]["type"] == "conflict"]
        assert [m["data"] for m in pushed] == [{"type": "conflict", "conflict_id": deleted["conflict"]["id"],
                                                "node_id": folder["id"]}]
        assert pushed[0]["notification"]["title"]
    listed = client.get("/mobile/v1/conflicts", headers=user.headers).get_json()["items"]
    assert [(c["id"], c["type"], c["device_id"]) for c in listed] == [(deleted["conflict"]["id"], "delete_modified",
                                                                       phone)]
