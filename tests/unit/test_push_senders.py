"""FCMSender runs the real firebase-admin against the local FCM HTTP v1 stand-in."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from firebase_admin import messaging

from mobile_api.sync import encode_cursor
from push import service
from push.senders import (
    FCM_BATCH_LIMIT,
    FCMSender,
    LogSender,
    PushMessage,
    firebase_app,
    point_messaging_at,
    to_fcm_message,
)
from push.tasks import backoff_seconds


@pytest.fixture
def sender(fcm_fake, fcm_service_account):
    return FCMSender(firebase_app(str(fcm_service_account), fcm_fake.url, fcm_fake.token_uri, timeout=30.0))


def message_for(intent: service.Intent, token: str, mid: str = "m1") -> PushMessage:
    kind = service.KINDS[intent.kind]
    return PushMessage(mid, token, intent.kind, intent.data, intent.notification, intent.collapse_key,
                       kind.ttl_seconds, kind.priority)


def test_every_kind_reaches_fcm_with_its_payload(sender, fcm_fake):
    intents = {
        "sync": service.intent_from_message({"type": "sync", "cursor": 42}),
        "conflict": service.intent_from_message({"type": "conflict", "conflict_id": "c1", "node_id": "n1"}),
        "pairing": service.intent_from_message({"type": "pairing", "session_id": "s1", "status": "waiting"}),
        "device": service.intent_from_message({"type": "device", "device_id": "d1", "online": False}),
    }
    results = sender.send_batch([message_for(i, f"tok-{k}", k) for k, i in intents.items()])
    assert [r.status for r in results] == ["sent"] * 4
    got = {k: fcm_fake.messages_for(f"tok-{k}")[0] for k in intents}

    assert got["sync"]["data"] == {"type": "sync", "cursor": encode_cursor(42)}
    assert "notification" not in got["sync"]
    assert got["sync"]["android"] == {"collapse_key": "sync", "priority": "normal", "ttl": "3600s"}
    assert got["sync"]["apns"]["headers"]["apns-push-type"] == "background"
    assert got["sync"]["apns"]["headers"]["apns-priority"] == "5"
    assert got["sync"]["apns"]["headers"]["apns-collapse-id"] == "sync"
    assert got["sync"]["apns"]["payload"]["aps"]["content-available"] == 1

    assert got["conflict"]["data"] == {"type": "conflict", "conflict_id": "c1", "node_id": "n1"}
    assert got["conflict"]["notification"]["title"]
    assert got["conflict"]["android"]["priority"] == "high"
    assert got["conflict"]["apns"]["headers"]["apns-push-type"] == "alert"
    assert got["conflict"]["apns"]["headers"]["apns-priority"] == "10"

    assert got["pairing"]["data"] == {"type": "pairing", "session_id": "s1", "status": "waiting"}
    assert "press the button" in got["pairing"]["notification"]["body"].lower()
    assert got["pairing"]["android"]["priority"] == "high"

    assert got["device"]["data"] == {"type": "device", "device_id": "d1", "online": "false"}
    assert got["device"]["android"]["collapse_key"] == "device-d1"
    assert "notification" not in got["device"]


def test_pairing_without_notification_after_waiting(sender, fcm_fake):
    intent = service.intent_from_message({"type": "pairing", "session_id": "s1", "status": "done"})
    assert sender.send_batch([message_for(intent, "tok")])[0].status == "sent"
    sent = fcm_fake.messages_for("tok")[0]
    assert sent["data"] == {"type": "pairing", "session_id": "s1", "status": "done"}
    assert "notification" not in sent


def test_the_one_firebase_admin_hook_still_works(fcm_fake, fcm_service_account, caplog):
    """Fails loudly if a firebase-admin upgrade moves the FCM URL or the session we re-point."""
    assert messaging._MessagingService.FCM_URL == "https://fcm.googleapis.com/v1/projects/{0}/messages:send"
    app = firebase_app(str(fcm_service_account), fcm_fake.url, fcm_fake.token_uri, timeout=5.0)
    svc = messaging._get_messaging_service(app)
    assert svc._fcm_url == f"{fcm_fake.url}/v1/projects/{fcm_fake.project_id}/messages:send"
    adapter = svc._client.session.get_adapter(fcm_fake.url + "/v1/x")
    assert adapter.max_retries.total == 0
    # and a real send goes there
    result = FCMSender(app).send_batch([PushMessage("h1", "hook-token", "sync", {"type": "sync", "cursor": "1"})])
    assert result[0].status == "sent"
    assert fcm_fake.messages_for("hook-token")
    # google-auth's regional-access-boundary lookup (a call to Google after each token refresh) is parked
    assert app.credential.get_credential()._rab_manager._should_refresh() is False
    assert "iamcredentials" not in caplog.text
    # pointing an app twice (or after an upgrade changed the URL) is refused, not silently ignored
    with pytest.raises(RuntimeError, match="point_messaging_at"):
        point_messaging_at(app, fcm_fake.url)


def test_firebase_app_is_built_once_per_configuration(fcm_fake, fcm_service_account):
    a = firebase_app(str(fcm_service_account), fcm_fake.url, fcm_fake.token_uri, timeout=5.0)
    b = firebase_app(str(fcm_service_account), fcm_fake.url, fcm_fake.token_uri, timeout=5.0)
    assert a is b
    assert a.name.startswith("pcloud-push-")
    assert a.options.get("httpTimeout") == 5.0


@pytest.mark.parametrize("error", ["QUOTA_EXCEEDED", "UNAVAILABLE"])
def test_retry_after_is_returned_not_slept_through(sender, fcm_fake, error):
    """firebase-admin's urllib3 retries would sleep 30 s here; ours answer at once with the wait to honour."""
    fcm_fake.behave("busy", error, retry_after=30)
    result = sender.send_batch([PushMessage("r1", "busy", "sync", {"type": "sync", "cursor": "1"})])[0]
    assert result.status == "retry"
    assert result.retry_after == 30
    assert fcm_fake.stats()["requests"] == 1  # no hidden retry inside the call


def test_errors_are_classified(sender, fcm_fake):
    for token, error in [("gone", "UNREGISTERED"), ("bad", "INVALID_ARGUMENT"), ("boom", "INTERNAL"),
                         ("other", "SENDER_ID_MISMATCH")]:
        fcm_fake.behave(token, error)
    msgs = [PushMessage(t, t, "sync", {"type": "sync", "cursor": "1"}) for t in ("gone", "bad", "boom", "other", "ok")]
    got = {r.id: r for r in sender.send_batch(msgs)}
    assert got["gone"].status == "unregistered"
    assert got["bad"].status == "invalid_token"
    assert got["boom"].status == "retry" and got["boom"].reason.startswith("INTERNAL")
    assert got["other"].status == "failed" and "SENDER_ID_MISMATCH" in got["other"].reason
    assert got["ok"].status == "sent"
    assert fcm_fake.stats()["requests"] == 5  # 500s are not retried inside firebase-admin either


def test_a_message_that_does_not_encode_fails_alone(sender, fcm_fake):
    good = [PushMessage(f"g{i}", f"tok-g{i}", "sync", {"type": "sync", "cursor": "1"}) for i in range(3)]
    bad = PushMessage("bad", "tok-bad", "sync", {"type": "sync", "cursor": "1"}, ttl_seconds=-5)  # negative TTL
    got = {r.id: r for r in sender.send_batch([good[0], bad, *good[1:]])}
    assert got["bad"].status == "failed" and got["bad"].reason.startswith("invalid message")
    assert [got[m.id].status for m in good] == ["sent"] * 3
    assert fcm_fake.stats()["requests"] == 3 and fcm_fake.messages_for("tok-bad") == []


def test_more_than_one_send_each_batch(sender, fcm_fake):
    count = FCM_BATCH_LIMIT + 7
    msgs = [PushMessage(f"b{i}", f"tok{i}", "device", {"type": "device", "device_id": "d", "online": "true"})
            for i in range(count)]
    results = sender.send_batch(msgs)
    assert len(results) == count and all(r.status == "sent" for r in results)
    assert fcm_fake.stats()["sent"] == count
    assert fcm_fake.stats()["token_requests"] == 1  # the OAuth token is fetched once, not per thread


def test_token_uri_override(fcm_fake, fcm_service_account):
    """The JSON names Google's token endpoint; PCLOUD_FCM_TOKEN_URI sends the grant to the stand-in."""
    info = json.loads(fcm_service_account.read_text())
    info["token_uri"] = "https://oauth2.googleapis.com/token"
    fcm_service_account.write_text(json.dumps(info))
    app = firebase_app(str(fcm_service_account), fcm_fake.url, fcm_fake.token_uri, timeout=5.0)
    result = FCMSender(app).send_batch([PushMessage("t1", "tok", "sync", {"type": "sync", "cursor": "1"})])
    assert result[0].status == "sent"
    assert fcm_fake.stats()["token_requests"] == 1


def test_building_messages_is_warning_clean():
    """We target registration tokens deliberately (see to_fcm_message); no DeprecationWarning escapes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        msg = to_fcm_message(PushMessage("w", "tok", "sync", {"type": "sync", "cursor": "1"}, collapse_key="sync"))
        encoded = json.loads(str(msg))
    assert caught == []
    assert encoded["token"] == "tok" and "fid" not in encoded


def test_log_sender_logs_each_message(caplog):
    with caplog.at_level(logging.INFO, logger="push.senders"):
        results = LogSender().send_batch([PushMessage("l1", "tok-abcdefghijklmnop", "sync",
                                                      {"type": "sync", "cursor": "9"})])
    assert results[0].status == "sent"
    assert '"cursor": "9"' in caplog.text and "push sync" in caplog.text


def test_payload_limit_is_enforced():
    with pytest.raises(service.PushPayloadTooLarge):
        service.intent_from_message({"type": "conflict", "conflict_id": "c", "node_id": "n", "body": "x" * 5000})
    ok = service.intent_from_message({"type": "conflict", "conflict_id": "c", "node_id": "n", "body": "x" * 3000})
    assert service.payload_bytes(ok.data, ok.notification) <= service.MAX_PAYLOAD_BYTES


@pytest.mark.parametrize("bad", [{"type": "nope"}, {"type": "sync"}, {"type": "pairing", "session_id": "s",
                                                                      "status": "start"}, "text"])
def test_bad_messages_are_refused(bad):
    with pytest.raises(service.BadRequest):
        service.intent_from_message(bad)


def test_backoff_grows_with_jitter_and_honours_retry_after():
    assert 1.0 <= backoff_seconds(1) <= 2.0
    assert 8.0 <= backoff_seconds(4) <= 16.0
    assert backoff_seconds(40) <= 900.0
    assert backoff_seconds(1, retry_after=30) >= 30
