"""The HTTP side of pairing and devices through the gateway: errors, ownership, the devices list."""

from __future__ import annotations

import pytest

from functions.pairing.service import PairingService
from push import registry
from tests.fixtures.pairing import unique_serial


@pytest.fixture
def svc(clients):
    clients.ensure_indexes()
    return PairingService.from_clients(clients)


def _nas(svc, owner=None):
    serial = unique_serial()
    svc.hello(serial, "Model", "1")
    if owner:
        svc.db.devices.update_one({"serial": serial}, {"$set": {"owner": owner}})
    return serial


def test_every_route_needs_a_token(client):
    for method, path in (("POST", "/pairing/v1/sessions"), ("GET", "/pairing/v1/sessions/" + "a" * 24),
                         ("GET", "/devices/v1/devices"), ("DELETE", "/devices/v1/devices/" + "a" * 24)):
        resp = client.open(path, method=method, json={"serial": "X"})
        assert resp.status_code == 401, (method, path)
        assert "error" in resp.json


@pytest.mark.parametrize("body,code", [
    (b"not json", "invalid_json"), (b"[1]", "invalid_json"), (b"{}", "invalid_serial"),
    (b'{"serial": "has.dot"}', "invalid_serial"), (b'{"serial": 7}', "invalid_serial"),
])
def test_start_with_bad_input_is_a_clear_400(client, make_user, body, code):
    user = make_user()
    resp = client.post("/pairing/v1/sessions", data=body, headers={**user.headers, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json["error"]["code"] == code


def test_start_unknown_serial_404_and_paired_elsewhere_409(client, make_user, svc):
    user = make_user()
    resp = client.post("/pairing/v1/sessions", json={"serial": unique_serial()}, headers=user.headers)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "device_not_found"
    serial = _nas(svc, owner="another-user")
    resp = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "device_paired_elsewhere"


def test_session_reads_are_owner_only_and_check_their_parameters(client, make_user, svc):
    alice, bob = make_user(), make_user()
    started = client.post("/pairing/v1/sessions", json={"serial": _nas(svc)}, headers=alice.headers)
    assert started.status_code == 201
    sid = started.json["session_id"]
    assert client.get(f"/pairing/v1/sessions/{sid}", headers=alice.headers).json["status"] == "start"
    assert client.get(f"/pairing/v1/sessions/{sid}", headers=bob.headers).status_code == 404
    assert client.get("/pairing/v1/sessions/nope", headers=alice.headers).status_code == 404
    for query, code in (("wait=abc", "invalid_wait"), ("wait=-1", "invalid_wait"), ("wait=nan", "invalid_wait"),
                        ("wait=1&since=bogus", "invalid_since")):
        resp = client.get(f"/pairing/v1/sessions/{sid}?{query}", headers=alice.headers)
        assert resp.status_code == 400 and resp.json["error"]["code"] == code, query
    quick = client.get(f"/pairing/v1/sessions/{sid}?wait=0.2&since=start", headers=alice.headers)
    assert quick.status_code == 200 and quick.json["status"] == "start"


def test_the_devices_list_holds_nas_boxes_and_phones_with_paging(client, make_user, svc, clients):
    alice, bob = make_user(), make_user()
    serial = _nas(svc, owner=alice.id)
    _nas(svc, owner=bob.id)
    _nas(svc)  # unpaired: nobody's
    phone = registry.register_phone(clients.db, alice.id, "Pixel", "android", "tok-1")
    items = client.get("/devices/v1/devices", headers=alice.headers).json["items"]
    by_kind = {d["kind"]: d for d in items}
    assert set(by_kind) == {"nas", "phone"} and len(items) == 2
    assert by_kind["nas"]["serial"] == serial and by_kind["nas"]["online"] is True
    assert set(by_kind["nas"]) == {"device_id", "kind", "name", "serial", "online", "last_seen", "paired_at"}
    assert by_kind["phone"]["device_id"] == phone and "serial" not in by_kind["phone"]
    assert set(by_kind["phone"]) == {"device_id", "kind", "name", "online", "last_seen", "paired_at"}

    first = client.get("/devices/v1/devices?limit=1", headers=alice.headers).json
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = client.get(f"/devices/v1/devices?limit=1&cursor={first['next_cursor']}", headers=alice.headers).json
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {first["items"][0]["device_id"], rest["items"][0]["device_id"]} == {d["device_id"] for d in items}
    assert client.get("/devices/v1/devices?limit=0", headers=alice.headers).status_code == 400


def test_delete_unpairs_a_nas_forgets_a_phone_and_404s_for_others(client, make_user, svc, clients):
    alice, bob = make_user(), make_user()
    serial = _nas(svc, owner=alice.id)
    nas_id = clients.db.devices.find_one({"serial": serial})["_id"]
    phone = registry.register_phone(clients.db, alice.id, "Pixel", "android", None)
    assert client.delete(f"/devices/v1/devices/{nas_id}", headers=bob.headers).status_code == 404
    assert client.delete(f"/devices/v1/devices/{phone}", headers=bob.headers).status_code == 404
    assert client.delete(f"/devices/v1/devices/{nas_id}", headers=alice.headers).status_code == 204
    assert client.delete(f"/devices/v1/devices/{phone}", headers=alice.headers).status_code == 204
    assert client.get("/devices/v1/devices", headers=alice.headers).json["items"] == []
    assert clients.db.devices.find_one({"_id": nas_id})["owner"] is None  # the box stays known, unowned
    assert clients.db.devices.find_one({"_id": phone}) is None
    assert client.delete(f"/devices/v1/devices/{nas_id}", headers=alice.headers).status_code == 404


def test_openapi_documents_pairing_and_devices(client):
    paths = client.get("/openapi.json").json["paths"]
    assert {"/pairing/v1/sessions", "/pairing/v1/sessions/{session_id}", "/devices/v1/devices",
            "/devices/v1/devices/{device_id}"} <= set(paths)
