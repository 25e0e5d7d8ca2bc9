"""NAS "Package Setting" over the real broker: reports, typed validation, pending → applied|failed, bad acks."""

from __future__ import annotations

import json

import pytest

from runtime import amqp
from tests.fixtures.pairing import pairing_env_for, unique_serial, wait_until

MEDIA = {"name": "media-server", "version": "1.0", "title": "Media",
         "settings": [{"key": "enabled", "type": "boolean", "default": True},
                      {"key": "port", "type": "integer", "min": 1024, "max": 65535, "default": 8096},
                      {"key": "ratio", "type": "number", "min": 0.5, "max": 2},
                      {"key": "mode", "type": "enum", "choices": ["off", "cpu", "gpu"], "default": "cpu"},
                      {"key": "label", "type": "string", "max_length": 8}],
         "values": {"port": 8096, "label": "Home"}}


@pytest.fixture
def env(env):
    return {**pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=3, confirm=8), "PCLOUD_PACKAGE_ACK_SECONDS": "3"}


def _pair_raw(client, clients, user, device) -> str:
    """Pair a hand-driven device: it answers pair.waiting and pair.confirmed itself."""
    device.send("hello", model="M", firmware="1")
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": device.serial}), what="hello")
    started = client.post("/pairing/v1/sessions", json={"serial": device.serial}, headers=user.headers)
    assert started.status_code == 201, started.json
    sid = started.json["session_id"]
    device.send("pair.waiting", session_id=sid)
    device.send("pair.confirmed", session_id=sid)
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json
    if done["status"] == "waiting":
        done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=user.headers).json
    assert done["status"] == "done", done
    return done["device_id"]


def _packages(client, user, device_id):
    answer = client.get(f"/devices/v1/devices/{device_id}/packages", headers=user.headers)
    assert answer.status_code == 200, answer.json
    return {p["name"]: p for p in answer.json["items"]}


class DeadLetters:
    """What the listener refused, by serial (taken off the dead-letter queue as it comes)."""

    def __init__(self, settings):
        self.settings = settings
        self.seen: list[tuple[str, dict]] = []

    def of(self, *serials) -> list[dict]:
        for key, body in amqp.fetch_messages(self.settings.amqp_url, amqp.DEAD_LETTER_QUEUE, 500):
            try:
                self.seen.append((key, json.loads(body)))
            except ValueError:
                continue
        return [m for key, m in self.seen if any(f".{s}." in key for s in serials)]

    def acks(self, *serials) -> list[str]:
        return sorted(m.get("id") for m in self.of(*serials) if m.get("type") == "package.configure.ack")


def test_the_agent_reports_its_packages_and_applies_a_change(client, clients, make_user, listener, nas_agent):
    serial = unique_serial("NAS")
    agent = nas_agent(serial, "--auto-press", "0.2")
    user = make_user()
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what="hello")
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=start", headers=user.headers).json
    if done["status"] == "waiting":
        done = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since=waiting", headers=user.headers).json
    device_id = done["device_id"]

    packages = wait_until(lambda: len(p := _packages(client, user, device_id)) >= 2 and p, what="packages.report")
    media = packages["media-server"]
    assert {s["key"]: s["type"] for s in media["settings"]} == {
        "enabled": "boolean", "port": "integer", "transcoding": "enum", "library_name": "string"}
    assert media["values"]["port"] == 8096 and media["change"] is None
    assert len(packages["backup"]["settings"]) >= 3

    put = client.put(f"/devices/v1/devices/{device_id}/packages/media-server/settings",
                     json={"port": 9000, "transcoding": "gpu"}, headers=user.headers)
    assert put.status_code == 202, put.json
    change = put.json["change"]
    assert change["state"] == "pending" and change["settings"] == {"port": 9000, "transcoding": "gpu"}
    assert put.json["values"]["port"] == 8096  # not yet: the device has not said so

    applied = wait_until(lambda: (m := _packages(client, user, device_id)["media-server"])["change"]["state"]
                         != "pending" and m, what="the ack")
    assert applied["change"]["state"] == "applied" and applied["change"]["id"] == change["id"]
    assert applied["values"]["port"] == 9000 and applied["values"]["transcoding"] == "gpu"
    saved = json.loads((agent.state_dir / f"{serial}.packages.json").read_text())
    assert saved["values"]["media-server"]["port"] == 9000
    one = client.get(f"/devices/v1/devices/{device_id}/packages/backup", headers=user.headers)
    assert one.status_code == 200 and one.json["name"] == "backup"

    # another user sees none of it
    other = make_user()
    assert client.get(f"/devices/v1/devices/{device_id}/packages", headers=other.headers).status_code == 404
    assert client.put(f"/devices/v1/devices/{device_id}/packages/media-server/settings", json={"port": 9001},
                      headers=other.headers).status_code == 404


def test_values_outside_the_declared_types_are_400_and_nothing_is_sent(client, clients, make_user, listener,
                                                                      raw_device):
    device = raw_device()
    user = make_user()
    device_id = _pair_raw(client, clients, user, device)
    device.send("packages.report", packages=[MEDIA])
    wait_until(lambda: _packages(client, user, device_id), what="the report")
    url = f"/devices/v1/devices/{device_id}/packages/media-server/settings"
    bad = {"port": "9000", "enabled": 1, "mode": "fast", "label": "far too long", "ratio": 3, "nope": True}
    answer = client.put(url, json=bad, headers=user.headers)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_settings"
    problems = {p["key"]: p["message"] for p in answer.json["error"]["details"]["problems"]}
    assert set(problems) == set(bad)
    assert "integer" in problems["port"] and "true or false" in problems["enabled"]
    assert "off, cpu, gpu" in problems["mode"] and "at most 2" in problems["ratio"]
    for body in ({}, {"port": 80}, {"port": 9000.5}, {"port": True}):
        answer = client.put(url, json=body, headers=user.headers)
        assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_settings", body
    assert client.put(url, data="[1]", content_type="application/json", headers=user.headers).status_code == 400
    assert client.put(f"/devices/v1/devices/{device_id}/packages/other/settings", json={"port": 9000},
                      headers=user.headers).status_code == 404
    assert _packages(client, user, device_id)["media-server"]["change"] is None
    assert amqp.fetch_messages(clients.settings.amqp_url, f"device.{device.serial}", 50) != []  # pairing only
    answer = client.put(url, json={"port": 1024, "ratio": 0.5, "mode": "off", "label": "12345678", "enabled": False},
                        headers=user.headers)
    assert answer.status_code == 202, answer.json
    sent = [json.loads(body) for _, body in amqp.fetch_messages(clients.settings.amqp_url, f"device.{device.serial}")]
    assert [m["type"] for m in sent] == ["package.configure"]
    assert sent[0]["id"] == answer.json["change"]["id"] and sent[0]["package"] == "media-server"
    assert sent[0]["settings"]["port"] == 1024 and sent[0]["expires_at"].endswith("Z")


def test_forged_unknown_stale_and_repeated_acks_change_nothing(client, clients, settings, make_user, listener,
                                                              raw_device):
    device, intruder = raw_device(), raw_device()
    user = make_user()
    device_id = _pair_raw(client, clients, user, device)
    intruder.send("hello", model="M", firmware="1")
    device.send("packages.report", packages=[MEDIA])
    wait_until(lambda: _packages(client, user, device_id), what="the report")
    dead = DeadLetters(settings)
    url = f"/devices/v1/devices/{device_id}/packages/media-server/settings"
    first = client.put(url, json={"port": 2000}, headers=user.headers).json["change"]["id"]

    intruder.send("package.configure.ack", id=first, ok=True)  # another device acks our change
    device.send("package.configure.ack", id="0" * 24, ok=True)  # an id we never sent
    device.send("package.configure.ack", id=first, routing_serial=intruder.serial, ok=True)  # body ≠ key
    wait_until(lambda: len(dead.acks(device.serial, intruder.serial)) == 3, what="three refusals")
    media = _packages(client, user, device_id)["media-server"]
    assert media["change"]["state"] == "pending" and media["values"]["port"] == 8096

    device.send("package.configure.ack", id=first, ok=True)
    wait_until(lambda: _packages(client, user, device_id)["media-server"]["change"]["state"] == "applied",
               what="the real ack")
    device.send("package.configure.ack", id=first, ok=False, reason="changed my mind")  # repeated: refused
    wait_until(lambda: len(dead.acks(device.serial, intruder.serial)) == 4, what="the repeat refused")
    second = client.put(url, json={"port": 3000}, headers=user.headers).json["change"]["id"]
    device.send("package.configure.ack", id=first, ok=True)  # the old id, now superseded
    device.send("package.configure.ack", id=second, ok=False, reason="disk_full")
    failed = wait_until(lambda: (m := _packages(client, user, device_id)["media-server"])["change"]["state"]
                        == "failed" and m, what="the second ack")
    assert failed["change"]["id"] == second and failed["change"]["reason"] == "disk_full"
    assert failed["values"]["port"] == 2000  # applied once; the refusals changed nothing
    wait_until(lambda: len(dead.acks(device.serial, intruder.serial)) == 5, what="the superseded ack refused")
    assert dead.acks(device.serial, intruder.serial) == sorted(["0" * 24, first, first, first, first])


def test_no_ack_in_time_is_failed_and_a_late_ack_is_refused(client, clients, settings, make_user, listener,
                                                            raw_device):
    device = raw_device()
    user = make_user()
    device_id = _pair_raw(client, clients, user, device)
    device.send("packages.report", packages=[MEDIA])
    bad = {**MEDIA, "name": "bad", "settings": [{"key": "x", "type": "color"}]}
    device.send("packages.report", packages=[MEDIA, bad])  # a type we do not know: the whole report refused
    wait_until(lambda: _packages(client, user, device_id), what="the report")
    url = f"/devices/v1/devices/{device_id}/packages/media-server/settings"
    change = client.put(url, json={"port": 4000}, headers=user.headers).json["change"]
    assert change["state"] == "pending"
    failed = wait_until(lambda: (m := _packages(client, user, device_id)["media-server"])["change"]["state"]
                        != "pending" and m, timeout=10, what="the timeout")
    assert failed["change"]["state"] == "failed" and failed["change"]["reason"] == "timeout"
    dead = DeadLetters(settings)
    device.send("package.configure.ack", id=change["id"], ok=True)
    wait_until(lambda: dead.acks(device.serial) == [change["id"]], what="the late ack dead-lettered")
    assert any(m.get("type") == "packages.report" for m in dead.of(device.serial))  # the report naming "color"
    media = _packages(client, user, device_id)
    assert list(media) == ["media-server"] and media["media-server"]["values"]["port"] == 8096
    assert media["media-server"]["change"]["state"] == "failed"
