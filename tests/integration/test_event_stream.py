"""GET /events/v1/stream through the real gateway over HTTP: resume with Last-Event-ID (and the in-band reset when
the log no longer reaches back), owner isolation, the per-user cap and the gateway's thread budget, the
credential ending a stream, the cookie, and proxy mode to the `stream` process (gunicorn's asyncio worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from runtime import events, sso_sessions
from runtime.ids import utcnow
from runtime.tokens import issue_access_token
from tests.conftest import free_port
from tests.sse import SSEClient

FAST = {"PCLOUD_STREAM_HEARTBEAT_SECONDS": "1"}


def _append(clients, owner, subject, type="files.node.created"):
    return events.append(clients.db, owner=owner, type=type, subject=subject, data={"path": f"/{subject}"})


def _messages(stream, n, timeout=15.0):
    """The next n event frames (control frames are returned too, in order)."""
    return [stream.next(timeout) for _ in range(n)]


def _stream(base, user=None, headers=None, query=""):
    return SSEClient(f"{base}/events/v1/stream{query}", headers={**(user.headers if user else {}), **(headers or {})})


def _eventually(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_live_events_then_resume_with_last_event_id_without_gaps_or_repeats(portal_gateway, clients, make_user):
    server, _ = portal_gateway(**FAST)
    user = make_user()
    _append(clients, user.id, "before")  # seq 1: a fresh stream starts from now, not from the past
    first = _stream(server.url, user)
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/event-stream")
    assert first.headers["Cache-Control"] == "no-store" and first.headers["X-Accel-Buffering"] == "no"
    _append(clients, user.id, "a")
    _append(clients, user.id, "b")
    got = _messages(first, 2)
    assert [(f["id"], f["data"]["subject"], f["data"]["type"]) for f in got] == \
        [("2", "a", "files.node.created"), ("3", "b", "files.node.created")]
    assert got[0]["data"]["owner"] == user.id and got[0]["data"]["data"] == {"path": "/a"}
    first.close()

    _append(clients, user.id, "c")  # while disconnected
    _append(clients, user.id, "d")
    again = _stream(server.url, user, {"Last-Event-ID": "3"})
    _append(clients, user.id, "e")  # live, after the catch-up
    assert [f["id"] for f in _messages(again, 3)] == ["4", "5", "6"]
    assert _eventually(lambda: again.comments >= 1)  # heartbeats keep proxies from closing it
    again.close()

    # ?after= for clients that cannot send headers; the header wins over it
    assert [f["id"] for f in _messages(_stream(server.url, user, query="?after=0"), 2)] == ["1", "2"]
    assert _messages(_stream(server.url, user, {"Last-Event-ID": "5"}, query="?after=0"), 1)[0]["id"] == "6"


def test_an_id_older_than_the_log_keeps_is_a_reset_then_what_is_kept(portal_gateway, clients, make_user):
    server, _ = portal_gateway(**FAST)
    user = make_user()
    for i in range(5):
        _append(clients, user.id, f"n{i}")
    clients.db.events.delete_many({"owner": user.id, "seq": {"$lte": 3}})  # what the retention sweep does
    stream = _stream(server.url, user, {"Last-Event-ID": "1"})
    reset, kept = _messages(stream, 2)
    assert reset["event"] == "reset" and reset["data"]["code"] == "cursor_expired"
    assert reset["data"]["oldest_seq"] == 4 and reset["data"]["seq"] == 3
    assert (kept["event"], kept["id"]) == ("message", "4")
    assert _messages(stream, 1)[0]["id"] == "5"
    unknown = _stream(server.url, user, {"Last-Event-ID": "99"})
    frame = _messages(unknown, 1)[0]
    assert frame["event"] == "reset" and frame["data"] == {**frame["data"], "code": "cursor_unknown", "seq": 5}
    for bad in ("abc", "-1", "1.5"):
        refused = _stream(server.url, user, {"Last-Event-ID": bad})
        assert refused.status == 400 and refused.error["error"]["code"] == "invalid_parameter", bad


def test_a_stream_carries_only_its_owners_events(portal_gateway, clients, make_user):
    server, _ = portal_gateway(**FAST)
    alice, bob = make_user(), make_user()
    alices, bobs = _stream(server.url, alice), _stream(server.url, bob)
    _append(clients, bob.id, "bobs-secret")
    _append(clients, alice.id, "alices")
    assert [(f["data"]["owner"], f["data"]["subject"]) for f in _messages(alices, 1)] == [(alice.id, "alices")]
    assert [f["data"]["subject"] for f in _messages(bobs, 1)] == ["bobs-secret"]
    # resuming never reaches into someone else's log either: bob's seq 1 is not alice's
    assert [f["data"]["owner"] for f in _messages(_stream(server.url, alice, query="?after=0"), 1)] == [alice.id]
    assert _stream(server.url).status == 401


def test_per_user_cap_is_a_clear_429_and_a_closed_stream_frees_its_slot(portal_gateway, clients, make_user):
    server, _ = portal_gateway(PCLOUD_STREAMS_PER_USER="2", **FAST)
    user, other = make_user(), make_user()
    one, two = _stream(server.url, user), _stream(server.url, user)
    third = _stream(server.url, user)
    assert third.status == 429 and third.error["error"]["code"] == "too_many_streams"
    assert third.error["error"]["details"] == {"limit": 2} and third.headers["Retry-After"]
    assert _stream(server.url, other).status == 200  # the cap is per user
    one.close()  # the server notices at its next heartbeat and frees the slot

    def reopened():
        s = _stream(server.url, user)
        return s if s.status == 200 else None

    again = _eventually(reopened)
    assert again, "the slot of a closed stream was never freed"
    _append(clients, user.id, "x")
    assert _messages(two, 1)[0]["data"]["subject"] == "x" and _messages(again, 1)[0]["data"]["subject"] == "x"


def test_reconnect_storm_hits_the_thread_budget_and_the_api_keeps_answering(portal_gateway, make_user):
    """More streams than the gateway may hold: 503 stream_capacity at once, the API still answers meanwhile."""
    server, _ = portal_gateway(PCLOUD_STREAM_THREADS="2", PCLOUD_STREAMS_PER_USER="50", **FAST)
    users = [make_user() for _ in range(3)]
    held = [_stream(server.url, users[0]), _stream(server.url, users[1])]
    assert all(s.status == 200 for s in held)
    statuses = []
    for i in range(30):  # a storm of reconnects
        s = _stream(server.url, users[i % 3])
        statuses.append(s.status)
        s.close()
        assert requests.get(f"{server.url}/events/v1", headers=users[2].headers, timeout=5).status_code == 200
    assert set(statuses) == {503}
    refused = _stream(server.url, users[2])
    assert refused.error["error"]["code"] == "stream_capacity" and refused.headers["Retry-After"]


def test_the_portal_cookie_opens_a_stream_and_signing_out_ends_it(portal_gateway, clients, make_portal_session):
    server, _ = portal_gateway(**FAST)
    session = make_portal_session()
    stream = _stream(server.url, headers={"Cookie": f"pcloud_sso={session.cookie}"})  # no CSRF header: a GET
    assert stream.status == 200
    _append(clients, session.user_id, "mine")
    assert _messages(stream, 1)[0]["data"]["subject"] == "mine"
    sso_sessions.end(clients.db, session.sid, "logout", utcnow())
    bye = stream.next(15)
    assert bye["event"] == "bye" and bye["data"] == {"reason": "session_ended"}
    assert stream.closed.wait(10)
    assert _stream(server.url, headers={"Cookie": f"pcloud_sso={session.cookie}"}).status == 401


def test_a_bearer_stream_ends_when_its_token_does(portal_gateway, clients, make_user):
    server, gw_settings = portal_gateway(**FAST)
    user = make_user()
    token, _ = issue_access_token(clients.keys, gw_settings, sub=user.id, aud="pcloud",
                                  extra={"exp": int(time.time()) + 3})
    stream = _stream(server.url, headers={"Authorization": f"Bearer {token}"})
    assert stream.status == 200
    bye = next(f for f in iter(lambda: stream.next(15), None) if f["event"] == "bye")
    assert bye["data"] == {"reason": "token_expired"}
    expired = _stream(server.url, headers={"Authorization": f"Bearer {token}"})
    assert expired.status == 401 and expired.error["error"]["code"] == "token_expired"


@pytest.fixture
def stream_process(env):
    """The Procfile's `stream` process (gunicorn, asyncio worker) for this test's environment."""
    port = free_port()
    proc_env = {**os.environ, **env, **FAST, "PCLOUD_STREAM_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([os.path.join(sys.prefix, "bin", "gunicorn"), "-c", "gateway/gunicorn_stream.conf.py",
                             "gateway.stream_server:app"], env=proc_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        assert _eventually(up, 30), "the stream process did not start"
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # quick shutdown: the open test streams need no grace
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_proxy_mode_streams_through_the_gateway_unbuffered(portal_gateway, stream_process, clients, make_user,
                                                           make_portal_session):
    server, _ = portal_gateway(PCLOUD_FUNCTION_STREAM_URL=stream_process, **FAST)
    user = make_user()
    _append(clients, user.id, "old")
    stream = _stream(server.url, user, {"Last-Event-ID": "0"})
    assert stream.status == 200 and stream.headers["X-Accel-Buffering"] == "no"
    assert _messages(stream, 1)[0]["data"]["subject"] == "old"
    for name in ("a", "b", "c"):  # one at a time: each arrives before the next is written (nothing buffered)
        _append(clients, user.id, name)
        assert _messages(stream, 1)[0]["data"]["subject"] == name
    assert _eventually(lambda: stream.comments >= 2)  # heartbeats pass the proxy too
    cookie = make_portal_session()
    by_cookie = _stream(server.url, headers={"Cookie": f"pcloud_sso={cookie.cookie}"})
    _append(clients, cookie.user_id, "theirs")
    assert [f["data"]["owner"] for f in _messages(by_cookie, 1)] == [cookie.user_id]
    assert _stream(server.url).status == 401


def test_the_stream_process_reached_directly_checks_credentials_like_the_gateway(stream_process, clients,
                                                                                  make_user):
    user = make_user()
    forged = _stream(stream_process, headers={"X-PCloud-Identity": "eyJ1c2VyX2lkIjogImV2aWwifQ.00"})
    assert forged.status == 401
    assert _stream(stream_process).status == 401
    bad = _stream(stream_process, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status == 401 and bad.error["error"]["code"] == "invalid_token"
    direct = _stream(stream_process, user, {"Last-Event-ID": "0"})
    assert direct.status == 200
    _append(clients, user.id, "direct")
    assert _messages(direct, 1)[0]["data"]["subject"] == "direct"
