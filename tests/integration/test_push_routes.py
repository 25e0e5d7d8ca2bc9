"""The phone registry and delivery log over HTTP through the real gateway (CONTRACT §5, §6)."""

from __future__ import annotations

from push.relay import relay_once
from runtime import events


def register(client, user, **body):
    return client.post("/mobile/v1/devices", json=body, headers=user.headers)


def test_register_phone_and_refresh_its_token(client, make_user, clients):
    user = make_user()
    resp = register(client, user, name="Pixel", platform="android", push_token="tok-1")
    assert resp.status_code == 201
    device_id = resp.get_json()["device_id"]
    doc = clients.db.devices.find_one({"_id": device_id})
    assert doc["kind"] == "phone" and doc["owner"] == user.id and doc["push_token"] == "tok-1"
    first_refresh = doc["token_updated_at"]

    resp = client.put(f"/mobile/v1/devices/{device_id}/push-token", json={"push_token": "tok-2"}, headers=user.headers)
    assert resp.status_code == 204 and resp.get_data() == b""
    doc = clients.db.devices.find_one({"_id": device_id})
    assert doc["push_token"] == "tok-2" and doc["token_updated_at"] >= first_refresh


def test_register_without_token_then_add_one(client, make_user, clients):
    user = make_user()
    device_id = register(client, user, name="iPhone", platform="ios").get_json()["device_id"]
    assert "push_token" not in clients.db.devices.find_one({"_id": device_id})
    assert client.put(f"/mobile/v1/devices/{device_id}/push-token", json={"push_token": "t"},
                      headers=user.headers).status_code == 204


def test_a_token_moves_to_the_install_that_registers_it(client, make_user, clients):
    alice, bob = make_user(), make_user()
    old = register(client, alice, name="Shared", platform="android", push_token="same").get_json()["device_id"]
    new = register(client, bob, name="Shared", platform="android", push_token="same").get_json()["device_id"]
    assert "push_token" not in clients.db.devices.find_one({"_id": old})
    assert clients.db.devices.find_one({"_id": new})["push_token"] == "same"


def test_bad_input_is_a_clear_400(client, make_user):
    user = make_user()
    for body in ({"platform": "android"}, {"name": "x", "platform": "windows"}, {"name": "", "platform": "ios"},
                 {"name": "x", "platform": "ios", "push_token": 5}):
        resp = register(client, user, **body)
        assert resp.status_code == 400, body
        assert resp.get_json()["error"]["code"]
    resp = client.post("/mobile/v1/devices", data="{nope", headers={**user.headers,
                                                                    "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_json"
    device_id = register(client, user, name="x", platform="ios").get_json()["device_id"]
    resp = client.put(f"/mobile/v1/devices/{device_id}/push-token", json={"push_token": ""}, headers=user.headers)
    assert resp.status_code == 400


def test_another_users_phone_is_404(client, make_user):
    alice, bob = make_user(), make_user()
    device_id = register(client, alice, name="A", platform="android").get_json()["device_id"]
    resp = client.put(f"/mobile/v1/devices/{device_id}/push-token", json={"push_token": "x"}, headers=bob.headers)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    resp = client.put("/mobile/v1/devices/nope/push-token", json={"push_token": "x"}, headers=alice.headers)
    assert resp.status_code == 404


def test_requires_a_token(client):
    assert client.post("/mobile/v1/devices", json={"name": "x", "platform": "ios"}).status_code == 401
    assert client.get("/mobile/v1/notifications").status_code == 401


def test_notifications_show_delivery_state(client, make_user, clients, push_context, drain_push, fcm_fake):
    alice, bob = make_user(), make_user()
    fcm_fake.behave("tok-dead", "UNREGISTERED")
    ok = register(client, alice, name="A1", platform="android", push_token="tok-ok").get_json()["device_id"]
    dead = register(client, alice, name="A2", platform="ios", push_token="tok-dead").get_json()["device_id"]
    register(client, bob, name="B", platform="ios", push_token="tok-bob")
    events.emit(clients.db, "conflict.created", alice.id, {"conflict_id": "c1", "node_id": "n1"})
    events.emit(clients.db, "device.online", alice.id, {"device_id": "nas", "online": True})
    relay_once(clients, push_context.lease)

    queued = client.get("/mobile/v1/notifications", headers=alice.headers).get_json()
    assert {i["status"] for i in queued["items"]} == {"queued"} and len(queued["items"]) == 4

    drain_push()
    body = client.get("/mobile/v1/notifications", headers=alice.headers).get_json()
    by = {(i["device_id"], i["kind"]): i for i in body["items"]}
    assert by[(ok, "conflict")]["status"] == "sent"
    assert by[(ok, "conflict")]["data"] == {"type": "conflict", "conflict_id": "c1", "node_id": "n1"}
    assert by[(dead, "conflict")]["status"] == "failed"
    assert "UNREGISTERED" in by[(dead, "conflict")]["reason"]
    assert body["next_cursor"] is None
    assert client.get("/mobile/v1/notifications", headers=bob.headers).get_json()["items"] == []

    page1 = client.get("/mobile/v1/notifications?limit=3", headers=alice.headers).get_json()
    page2 = client.get(f"/mobile/v1/notifications?limit=3&cursor={page1['next_cursor']}",
                       headers=alice.headers).get_json()
    ids = [i["id"] for i in page1["items"] + page2["items"]]
    assert len(ids) == 4 and len(set(ids)) == 4 and page2["next_cursor"] is None
    only = client.get(f"/mobile/v1/notifications?device_id={ok}", headers=alice.headers).get_json()["items"]
    assert {i["device_id"] for i in only} == {ok}
    assert client.get("/mobile/v1/notifications?cursor=zzz", headers=alice.headers).status_code == 400
    assert client.get("/mobile/v1/notifications?limit=0", headers=alice.headers).status_code == 400


def test_openapi_documents_the_push_routes(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "post" in paths["/mobile/v1/devices"]
    assert "put" in paths["/mobile/v1/devices/{device_id}/push-token"]
    assert "get" in paths["/mobile/v1/notifications"]
