"""The notifier end to end against real MongoDB/Redis, a local webhook receiver on 127.0.0.1 and the FCM
stand-in: webhook API, signed deliveries, retries with backoff, auto-disable, and a NAS going offline.

The receiver lives on loopback, which webhooks may not reach by default: this module's environment allows
127.0.0.1/32 on purpose (PCLOUD_WEBHOOK_ALLOW_NETS, the admin's allowance); test_refusals_without_allowance
runs without it and proves the refusal.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from email.utils import format_datetime

import pytest

from functions.notify import delivering, service, storage, worker
from functions.pairing.service import PairingService
from push.relay import relay_once
from runtime import events
from runtime.ids import as_utc, utcnow
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.pairing import unique_serial, wait_until

ALLOW = {"PCLOUD_WEBHOOK_ALLOW_NETS": "127.0.0.1/32", "PCLOUD_WEBHOOK_BACKOFF_SECONDS": "0.05",
         "PCLOUD_WEBHOOK_DISABLE_AFTER": "3", "PCLOUD_WEBHOOK_MAX_ATTEMPTS": "5",
         "PCLOUD_WEBHOOK_TIMEOUT_SECONDS": "5"}


@pytest.fixture
def env(env, request):
    return env if request.node.get_closest_marker("no_allowance") else {**env, **ALLOW}


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def notifier(settings, clients):
    """The real notifier loops (`functions.notify.worker.run`) in a thread for this test's settings."""
    clients.ensure_indexes()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(settings, stop), kwargs={"idle_seconds": 0.5}, daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join(timeout=15)


def make_hook(client, user, url, events_=("devices.device.offline",)):
    resp = client.post("/notify/v1/webhooks", json={"url": url, "events": list(events_)}, headers=user.headers)
    assert resp.status_code == 201, resp.json
    return resp.json


def offline_event(clients, owner, device_id="nas-1"):
    return events.append(clients.db, owner=owner, type="devices.device.offline", subject=device_id,
                         data={"device": {"device_id": device_id, "kind": "nas", "name": "Attic NAS",
                                          "serial": "SN-1", "online": False}})


@pytest.mark.no_allowance
def test_refusals_without_allowance(client, make_user):
    user = make_user()
    for url, reason in (("http://127.0.0.1:9/hook", "loopback"), ("http://10.0.0.8/hook", "private"),
                        ("http://169.254.169.254/latest/meta-data/", "link_local"),
                        ("http://localhost:9/hook", "loopback")):
        resp = client.post("/notify/v1/webhooks", json={"url": url, "events": ["*"]}, headers=user.headers)
        assert resp.status_code == 400, url
        assert resp.json["error"]["code"] == "url_not_allowed"
        assert resp.json["error"]["details"]["reason"] == reason
    assert client.get("/notify/v1/webhooks", headers=user.headers).json["items"] == []


def test_webhook_api_crud_rotate_and_bad_input(client, make_user, receiver):
    user, other = make_user(), make_user()
    created = make_hook(client, user, receiver.url + "/in", ["devices.device.offline", "apps.execution.dead"])
    assert created["secret"].startswith("whsec_") and created["state"] == "enabled"
    hook_id = created["id"]
    got = client.get(f"/notify/v1/webhooks/{hook_id}", headers=user.headers).json
    assert "secret" not in got and got["events"] == ["devices.device.offline", "apps.execution.dead"]
    assert client.get(f"/notify/v1/webhooks/{hook_id}", headers=other.headers).status_code == 404
    assert [h["id"] for h in client.get("/notify/v1/webhooks", headers=user.headers).json["items"]] == [hook_id]

    bad = client.post("/notify/v1/webhooks", json={"url": receiver.url, "events": ["no.such.type"]},
                      headers=user.headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_events"
    bad = client.post("/notify/v1/webhooks", json={"url": "ftp://x/", "events": ["*"]}, headers=user.headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_url"

    patched = client.patch(f"/notify/v1/webhooks/{hook_id}", json={"events": ["*"], "description": "home"},
                           headers=user.headers).json
    assert patched["events"] == ["*"] and patched["description"] == "home"

    rotated = client.post(f"/notify/v1/webhooks/{hook_id}/rotate-secret", json={"grace_seconds": 60},
                          headers=user.headers).json
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_until"]
    # during the grace period a receiver holding either secret verifies the ping
    receiver.secret = created["secret"]
    ping = client.post(f"/notify/v1/webhooks/{hook_id}/ping", headers=user.headers).json
    assert ping["state"] == "delivered" and ping["last"]["status"] == 200
    receiver.secret = rotated["secret"]
    client.post(f"/notify/v1/webhooks/{hook_id}/ping", headers=user.headers)
    assert [a.verified for a in receiver.arrivals] == [True, True]
    assert receiver.arrivals[0].headers["PCloud-Event"] == "notify.webhook.ping"
    log = client.get(f"/notify/v1/webhooks/{hook_id}/deliveries?limit=1", headers=user.headers).json
    assert len(log["items"]) == 1 and log["next_cursor"]
    older = client.get(f"/notify/v1/webhooks/{hook_id}/deliveries?cursor={log['next_cursor']}",
                       headers=user.headers).json
    assert len(older["items"]) == 1 and older["items"][0]["id"] != log["items"][0]["id"]

    assert client.delete(f"/notify/v1/webhooks/{hook_id}", headers=other.headers).status_code == 404
    assert client.delete(f"/notify/v1/webhooks/{hook_id}", headers=user.headers).status_code == 204
    assert client.get(f"/notify/v1/webhooks/{hook_id}", headers=user.headers).status_code == 404


def test_rules_choose_what_reaches_the_phones(client, make_user):
    user = make_user()
    rules = client.get("/notify/v1/rules", headers=user.headers).json
    assert rules["defaults"] is True and "devices.device.offline" in rules["push"]
    changed = client.put("/notify/v1/rules", json={"push": ["devices.device.online"]}, headers=user.headers).json
    assert changed["push"] == ["devices.device.online"] and changed["defaults"] is False
    bad = client.put("/notify/v1/rules", json={"push": ["nope"]}, headers=user.headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_events"


def test_a_delivery_is_retried_with_growing_backoff_until_it_lands(client, clients, make_user, receiver, settings):
    user = make_user()
    hook = make_hook(client, user, receiver.url)
    receiver.secret = hook["secret"]
    receiver.script = [500, 503, 500]  # then 200
    event = offline_event(clients, user.id)
    docs = events.claim(clients.db, "notify")
    assert service.handle_events(clients.db, clients.mongo, docs) == 1
    assert service.handle_events(clients.db, clients.mongo, docs) == 0  # at least once: nothing twice
    # three failures in a row would disable it here (PCLOUD_WEBHOOK_DISABLE_AFTER=3): this test lets it retry
    deliverer = delivering.Deliverer(clients.db, clients.mongo, settings.with_overrides(webhook_disable_after=10))
    try:
        def delivered():
            deliverer.run_once()
            return clients.db.notify_deliveries.find_one({"webhook_id": hook["id"], "state": "delivered"})

        doc = wait_until(delivered, timeout=20, every=0.02, what="the delivery after three failures")
    finally:
        deliverer.close()
    assert [h["status"] for h in doc["history"]] == [500, 503, 500, 200]
    times = [as_utc(h["at"]) for h in doc["history"]]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # 0.05 s doubling
    assert all(a.verified for a in receiver.arrivals) and receiver.count() == 4
    body = receiver.arrivals[-1].json
    assert body["id"] == doc["_id"] and body["event"]["id"] == event["id"] and body["type"] == event["type"]
    assert len({a.body for a in receiver.arrivals}) == 1  # every retry signs the same bytes
    shown = client.get(f"/notify/v1/webhooks/{hook['id']}", headers=user.headers).json
    assert shown["consecutive_failures"] == 0 and shown["last_status"] == 200


def _deliver_until(deliverer, clients, hook_id, state, what):
    def done():
        deliverer.run_once()
        return clients.db.notify_deliveries.find_one({"webhook_id": hook_id, "state": state})

    return wait_until(done, timeout=20, every=0.02, what=what)


def test_retry_after_is_honoured_up_to_the_maximum_and_said_in_the_log(client, clients, make_user, receiver,
                                                                       settings):
    user = make_user()
    hook = make_hook(client, user, receiver.url)
    receiver.secret = hook["secret"]
    date = utcnow().replace(microsecond=0) + timedelta(seconds=3)
    receiver.script = [(503, {"Retry-After": "1"}), (429, {"Retry-After": format_datetime(date, usegmt=True)}),
                       (503, {"Retry-After": "soon"}), (429, {"Retry-After": "86400"})]  # then 200
    offline_event(clients, user.id)
    service.handle_events(clients.db, clients.mongo, events.claim(clients.db, "notify"))
    deliverer = delivering.Deliverer(clients.db, clients.mongo, settings.with_overrides(webhook_disable_after=10))
    try:
        doc = _deliver_until(deliverer, clients, hook["id"], "delivered", "the delivery after Retry-Afters")
    finally:
        deliverer.close()
    history = doc["history"]
    assert [h["status"] for h in history] == [503, 429, 503, 429, 200]
    at = [as_utc(h["at"]) for h in history]
    assert history[0]["note"] == "next attempt in 1 s, as Retry-After asked"
    assert (at[1] - at[0]).total_seconds() >= 1.0  # no sooner than asked (the backoff alone was 0.05 s)
    assert "as Retry-After asked" in history[1]["note"] and at[2] >= date  # the HTTP-date form
    assert "neither seconds nor an HTTP-date" in history[2]["note"]  # malformed: the normal backoff
    # a day is over the one-hour maximum: ignored, the normal backoff applied (else this test would wait a day)
    assert history[3]["retry_after"] == "86400" and "over the 3600 s maximum" in history[3]["note"]
    shown = client.get(f"/notify/v1/webhooks/{hook['id']}/deliveries", headers=user.headers).json["items"][0]
    assert [(h["retry_after"], h["note"] is not None) for h in shown["history"]][:2] == [
        ("1", True), (format_datetime(date, usegmt=True), True)]
    assert shown["last"]["status"] == 200 and shown["last"]["note"] is None


def test_410_gone_disables_the_webhook_at_once(client, clients, make_user, receiver, settings):
    user = make_user()
    hook = make_hook(client, user, receiver.url)
    receiver.default = 410
    offline_event(clients, user.id, "nas-a")
    service.handle_events(clients.db, clients.mongo, events.claim(clients.db, "notify"))
    deliverer = delivering.Deliverer(clients.db, clients.mongo, settings.with_overrides(webhook_disable_after=10))
    try:
        _deliver_until(deliverer, clients, hook["id"], "dead", "the 410'd delivery")
    finally:
        deliverer.close()
    assert receiver.count() == 1  # not retried
    shown = client.get(f"/notify/v1/webhooks/{hook['id']}", headers=user.headers).json
    assert shown["state"] == "disabled" and shown["disabled_reason"] == "the receiver answered 410 Gone"
    log = client.get(f"/notify/v1/webhooks/{hook['id']}/deliveries", headers=user.headers).json["items"]
    assert [d["state"] for d in log] == ["dead"] and log[0]["last"]["status"] == 410
    assert log[0]["last"]["note"] == "410 Gone: not retried, the webhook is disabled"
    told = events.list_events(clients.db, user.id, type_prefix="notify.webhook")[0]
    assert [e["type"] for e in told] == ["notify.webhook.disabled"]
    offline_event(clients, user.id, "nas-b")  # a disabled webhook gets nothing new
    assert service.handle_events(clients.db, clients.mongo, events.claim(clients.db, "notify")) == 0


def test_repeated_failure_disables_the_webhook_and_tells_the_owner(client, clients, make_user, receiver, settings,
                                                                    push_context, drain_push, fcm_fake, make_phone):
    user = make_user()
    make_phone(user.id, "tok-owner")
    failing = make_hook(client, user, receiver.url + "/failing")
    watcher = WebhookReceiver().start()
    try:
        told = make_hook(client, user, watcher.url + "/ok", ["notify.webhook.disabled"])
        watcher.secret = told["secret"]
        receiver.default = 500
        offline_event(clients, user.id, "nas-a")
        deliverer = delivering.Deliverer(clients.db, clients.mongo, settings)
        try:
            def disabled():
                service.handle_events(clients.db, clients.mongo, _claim_and_ack(clients))
                deliverer.run_once()
                return clients.db.webhooks.find_one({"_id": failing["id"], "state": "disabled"})

            wait_until(disabled, timeout=20, every=0.02, what="the webhook to be disabled")
            wait_until(lambda: (service.handle_events(clients.db, clients.mongo, _claim_and_ack(clients)),
                                deliverer.run_once(), watcher.count())[2], timeout=10, what="the disabled notice")
        finally:
            deliverer.close()
        assert receiver.count() == 3  # PCLOUD_WEBHOOK_DISABLE_AFTER=3: no fourth attempt
        shown = client.get(f"/notify/v1/webhooks/{failing['id']}", headers=user.headers).json
        assert shown["state"] == "disabled" and "3 failed attempts" in shown["disabled_reason"]
        log = client.get(f"/notify/v1/webhooks/{failing['id']}/deliveries", headers=user.headers).json["items"]
        assert log[0]["state"] == "dead" and [h["status"] for h in log[0]["history"]] == [500, 500, 500]
        notice = watcher.arrivals[0]
        assert notice.verified and notice.json["event"]["data"]["webhook"]["id"] == failing["id"]
        # ... and on the phone: a visible alert
        relay_once(clients, push_context.lease)
        drain_push()
        alerts = [m for m in fcm_fake.messages_for("tok-owner") if m["data"]["type"] == "alert"]
        kinds = {m["data"]["event_type"]: m for m in alerts}
        assert kinds["notify.webhook.disabled"]["notification"]["title"] == "Webhook disabled"
        assert "devices.device.offline" in kinds  # the default rules push a NAS going offline too
        # re-enabled, it starts from a clean slate
        again = client.patch(f"/notify/v1/webhooks/{failing['id']}", json={"enabled": True}, headers=user.headers)
        assert again.json["state"] == "enabled" and again.json["consecutive_failures"] == 0
    finally:
        watcher.stop()


def _claim_and_ack(clients):
    docs = events.claim(clients.db, "notify")
    events.ack(clients.db, "notify", [d["_id"] for d in docs])
    return docs


def test_nas_offline_reaches_the_webhook_and_the_phone(client, clients, make_user, receiver, notifier,
                                                        push_context, drain_push, fcm_fake, make_phone):
    """The 90 s rule as it runs: a paired NAS silent for 91 s is marked offline by the pairing job, and the
    notifier (running) delivers the signed webhook and the phone alert."""
    user = make_user()
    make_phone(user.id, "tok-phone")
    hook = make_hook(client, user, receiver.url + "/nas", ["devices.device.offline", "pairing.session.done"])
    receiver.secret = hook["secret"]
    pairing = PairingService.from_clients(clients)
    serial = unique_serial("NOTIFY")
    pairing.hello(serial, "M1", "1.0")
    session = pairing.start(user.id, serial)
    pairing.on_waiting(serial, session["session_id"])
    pairing.on_confirmed(serial, session["session_id"])
    nas = clients.db.devices.find_one({"kind": "nas", "serial": serial})
    assert nas["owner"] == user.id
    wait_until(lambda: receiver.count() == 1, timeout=15, what="the pairing result")
    assert receiver.arrivals[0].json["type"] == "pairing.session.done"

    assert pairing.mark_offline() == 0  # heard from just now
    clients.db.devices.update_one({"_id": nas["_id"]}, {"$set": {"last_seen": utcnow() - timedelta(seconds=91)}})
    assert pairing.mark_offline() == 1  # what the scheduler's mark_devices_offline does every 10 s
    arrival = wait_until(lambda: receiver.count() == 2 and receiver.arrivals[1], timeout=15,
                         what="the offline webhook")
    assert arrival.verified is True and arrival.headers["PCloud-Event"] == "devices.device.offline"
    assert arrival.json["event"]["subject"] == nas["_id"]
    assert arrival.json["event"]["data"]["device"]["online"] is False

    relay_once(clients, push_context.lease)
    drain_push()
    alert = [m for m in fcm_fake.messages_for("tok-phone") if m["data"]["type"] == "alert"]
    assert [m["data"]["event_type"] for m in alert] == ["devices.device.offline"]
    assert alert[0]["data"]["subject"] == nas["_id"] and alert[0]["notification"]["title"] == "NAS offline"
    # the existing data-only device push still goes too (CONTRACT §6)
    device = [m["data"] for m in fcm_fake.messages_for("tok-phone") if m["data"]["type"] == "device"]
    assert device == [{"type": "device", "device_id": nas["_id"], "online": "false"}]


def test_pairing_failures_and_dead_executions_enter_the_log(clients, make_user):
    from functions.apps import executions as ex

    user = make_user()
    pairing = PairingService.from_clients(clients)
    serial = unique_serial("NOTIFY")
    pairing.hello(serial, "M1", "1.0")
    session = pairing.start(user.id, serial)
    pairing.on_rejected(serial, session["session_id"], "busy")
    found = events.list_events(clients.db, user.id, type_prefix="pairing.session")[0]
    assert [e["type"] for e in found] == ["pairing.session.failed"]
    assert found[0]["data"]["reason"] == "busy" and found[0]["data"]["serial"] == serial

    doc = ex.new_execution(owner=user.id, app="demo", action="go", params={})
    clients.db.executions.insert_one(doc)
    claimed = ex.claim(clients.db, doc["_id"], "me", 30)
    ex.finish(clients.db, claimed, "me", "dead", error="the app answered 400")
    dead = events.list_events(clients.db, user.id, type_prefix="apps.execution")[0]
    assert [e["type"] for e in dead] == ["apps.execution.dead"]
    assert dead[0]["data"]["execution"]["error"] == "the app answered 400"
    assert dead[0]["cause"]["app"] == "demo"  # the app's own failure never triggers that app


def test_storage_nearly_full_is_told_to_admins_once_per_crossing(clients, make_user, tmp_path):
    admin, member = make_user(admin=True), make_user()
    fill = {"used": 95}

    def usage(path):
        return 100, fill["used"], 100 - fill["used"]

    assert storage.check(clients.db, clients.mongo, tmp_path, 90, utcnow(), usage=usage) == 1
    assert storage.check(clients.db, clients.mongo, tmp_path, 90, utcnow(), usage=usage) == 0
    fill["used"] = 87  # within the 5-point hysteresis: still full, nothing new
    assert storage.check(clients.db, clients.mongo, tmp_path, 90, utcnow(), usage=usage) == 0
    fill["used"] = 50
    storage.check(clients.db, clients.mongo, tmp_path, 90, utcnow(), usage=usage)
    fill["used"] = 92
    assert storage.check(clients.db, clients.mongo, tmp_path, 90, utcnow(), usage=usage) == 1
    told = events.list_events(clients.db, admin.id, type_prefix="storage.volume")[0]
    assert [e["data"]["used_percent"] for e in told] == [95.0, 92.0]
    assert events.list_events(clients.db, member.id, type_prefix="storage.volume")[0] == []


NETS = "/notify/v1/admin/allowed-networks"


@pytest.mark.no_allowance
def test_allowed_networks_are_for_admins_checked_strictly_and_audited(client, clients, make_user):
    admin, other_admin, member = make_user(admin=True), make_user(admin=True), make_user()
    empty = client.get(NETS, headers=admin.headers)
    assert empty.status_code == 200
    assert empty.json == {"networks": [], "from_settings": [], "updated_at": None, "updated_by": None}
    for resp in (client.get(NETS, headers=member.headers),
                 client.put(NETS, json={"networks": ["10.0.0.0/8"]}, headers=member.headers)):
        assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"
    for networks, code in ((["0.0.0.0/0"], "network_too_broad"), (["::/0"], "network_too_broad"),
                           (["10.0.0.0/8", "8.0.0.0/6"], "network_too_broad"), (["192.168.1.5/24"], "invalid_network"),
                           (["0.0.0.0/8"], "network_not_allowed"), (["lan"], "invalid_network"),
                           ("10.0.0.0/8", "invalid_networks"), (["10.0.0.0/8"] * 65, "invalid_networks")):
        bad = client.put(NETS, json={"networks": networks}, headers=admin.headers)
        assert bad.status_code == 400 and bad.json["error"]["code"] == code, (networks, bad.json)
    assert client.put(NETS, json={}, headers=admin.headers).status_code == 400
    assert client.get(NETS, headers=admin.headers).json["networks"] == []  # nothing kept from the refusals

    done = client.put(NETS, json={"networks": ["192.168.1.0/24", "127.0.0.1"]}, headers=admin.headers)
    assert done.status_code == 200, done.json
    assert done.json["networks"] == ["192.168.1.0/24", "127.0.0.1/32"] and done.json["updated_by"] == admin.id
    seen = client.get(NETS, headers=other_admin.headers).json  # the box's list, the same for every admin
    assert seen["networks"] == ["192.168.1.0/24", "127.0.0.1/32"] and seen["updated_by"] == admin.id
    client.put(NETS, json={"networks": ["192.168.1.0/24", "127.0.0.1/32"]}, headers=other_admin.headers)  # no-op
    client.put(NETS, json={"networks": ["127.0.0.1/32"]}, headers=other_admin.headers)

    audit = events.list_events(clients.db, admin.id, type_prefix="notify.allowlist")[0]
    assert [(e["type"], e["data"]["added"], e["data"]["removed"]) for e in audit] == [
        ("notify.allowlist.changed", ["192.168.1.0/24", "127.0.0.1/32"], [])]
    audit = events.list_events(clients.db, other_admin.id, type_prefix="notify.allowlist")[0]
    assert [(e["data"]["previous"], e["data"]["networks"], e["data"]["removed"]) for e in audit] == [
        (["192.168.1.0/24", "127.0.0.1/32"], ["127.0.0.1/32"], ["192.168.1.0/24"])]  # the no-op made none
    assert events.list_events(clients.db, member.id, type_prefix="notify.allowlist")[0] == []
    assert clients.db.notify_allowlist.count_documents({}) == 1


def test_allowed_networks_show_the_setting_apart(client, make_user):
    admin = make_user(admin=True)
    shown = client.get(NETS, headers=admin.headers).json
    assert shown["from_settings"] == ["127.0.0.1/32"] and shown["networks"] == []  # PCLOUD_WEBHOOK_ALLOW_NETS


@pytest.mark.no_allowance
def test_a_loopback_webhook_is_refused_until_an_admin_allows_it(client, clients, make_user, receiver, settings):
    """No restart between the steps: one deliverer (as the notifier process keeps) sees each change."""
    admin, member = make_user(admin=True), make_user()
    deliverer = delivering.Deliverer(clients.db, clients.mongo, settings)
    try:
        refused = client.post("/notify/v1/webhooks", json={"url": receiver.url + "/lan", "events": ["*"]},
                              headers=member.headers)
        assert refused.status_code == 400 and refused.json["error"]["details"]["reason"] == "loopback"

        assert client.put(NETS, json={"networks": ["127.0.0.1/32"]}, headers=admin.headers).status_code == 200
        hook = make_hook(client, member, receiver.url + "/lan")
        receiver.secret = hook["secret"]
        offline_event(clients, member.id, "nas-1")
        service.handle_events(clients.db, clients.mongo, _claim_and_ack(clients))
        _deliver_until(deliverer, clients, hook["id"], "delivered", "the delivery to the allowed receiver")
        assert [a.verified for a in receiver.arrivals] == [True]

        # taken back: the next attempt is refused before anything is sent
        assert client.put(NETS, json={"networks": []}, headers=admin.headers).json["networks"] == []
        offline_event(clients, member.id, "nas-2")
        service.handle_events(clients.db, clients.mongo, _claim_and_ack(clients))
        failed = _deliver_until(deliverer, clients, hook["id"], "failed", "the refused attempt")
        assert failed["last"]["status"] is None and failed["last"]["error"].startswith("url_not_allowed")
        assert receiver.count() == 1
    finally:
        deliverer.close()
