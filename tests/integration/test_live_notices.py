"""Live notices (runtime/live.py) over GET /events/v1/stream: a notice published in Redis reaches the open
streams of its owner only, as `event: live` without an id, in both servers (in-process and the `stream`
process); the log's Last-Event-ID resume is untouched; publishing never raises; an execution's run publishes
its states."""

from __future__ import annotations

import queue

import redis as redis_lib

from functions.apps import executions as ex
from functions.apps.actions import Invoker
from runtime import events, live
from tests.integration.test_event_stream import FAST, stream_process  # noqa: F401 - the fixture
from tests.sse import SSEClient


def _stream(base, user, headers=None):
    return SSEClient(f"{base}/events/v1/stream", headers={**user.headers, **(headers or {})})


def _first_live(stream, clients, owner, marker, tries=100):
    """Publish `marker` until the stream shows it (the subscriber may still be subscribing): that frame."""
    for _ in range(tries):
        live.publish(clients.redis, clients.redis_keys, owner, "tests.marker", {"marker": marker})
        try:
            frame = stream.next(0.2)
        except queue.Empty:
            continue
        if frame["event"] == "live" and frame["data"]["data"] == {"marker": marker}:
            return frame
    raise AssertionError("no live notice reached the stream")


def _drain_markers(stream):
    """Frames after the subscriber is known to be up, without the repeats of the marker."""
    out = []
    while True:
        try:
            frame = stream.next(0.5)
        except queue.Empty:
            return out
        if frame["data"].get("type") != "tests.marker":
            out.append(frame)


def test_a_notice_reaches_its_owners_streams_only_and_leaves_the_log_resume_alone(portal_gateway, clients,
                                                                                   make_user):
    server, _ = portal_gateway(**FAST)
    ada, bob = make_user(), make_user()
    events.append(clients.db, owner=ada.id, type="files.node.created", subject="a", data={})  # seq 1
    mine = _stream(server.url, ada, {"Last-Event-ID": "1"})
    theirs = _stream(server.url, bob)
    frame = _first_live(mine, clients, ada.id, "up")
    assert frame["id"] is None and frame["data"]["live"] is True and "seq" not in frame["data"]
    _first_live(theirs, clients, bob.id, "bob up")

    live.publish(clients.redis, clients.redis_keys, ada.id, "apps.execution.started",
                 {"id": "x1", "state": "in_progress"})
    events.append(clients.db, owner=ada.id, type="files.node.created", subject="b", data={})  # seq 2
    live.publish(clients.redis, clients.redis_keys, ada.id, "apps.execution.done", {"id": "x1", "state": "done"})
    events.append(clients.db, owner=ada.id, type="files.node.created", subject="c", data={})  # seq 3
    live.publish(clients.redis, clients.redis_keys, bob.id, "apps.execution.done", {"id": "y1", "state": "done"})
    got = _drain_markers(mine)
    log_frames = [f for f in got if f["event"] == "message"]
    notices = [f for f in got if f["event"] == "live"]
    assert [(f["id"], f["data"]["subject"]) for f in log_frames] == [("2", "b"), ("3", "c")]
    assert [(n["id"], n["data"]["type"], n["data"]["data"]["id"]) for n in notices] == \
        [(None, "apps.execution.started", "x1"), (None, "apps.execution.done", "x1")]
    assert [(f["event"], f["data"]["data"]["id"]) for f in _drain_markers(theirs)] == [("live", "y1")]
    mine.close()

    # a notice published while ada is away is not replayed; her resume is exactly the log after her id
    live.publish(clients.redis, clients.redis_keys, ada.id, "apps.execution.dead", {"id": "x2", "state": "dead"})
    events.append(clients.db, owner=ada.id, type="files.node.created", subject="d", data={})  # seq 4
    again = _stream(server.url, ada, {"Last-Event-ID": "3"})
    first = again.next(10)
    assert (first["event"], first["id"], first["data"]["subject"]) == ("message", "4", "d")
    _first_live(again, clients, ada.id, "again")
    assert _drain_markers(again) == []
    theirs.close()
    again.close()


def test_the_stream_process_delivers_notices_too(stream_process, clients, make_user):  # noqa: F811
    user, other = make_user(), make_user()
    stream = _stream(stream_process, user)
    other_stream = _stream(stream_process, other)
    _first_live(stream, clients, user.id, "up")
    _first_live(other_stream, clients, other.id, "up")
    live.publish(clients.redis, clients.redis_keys, user.id, "apps.execution.queued", {"id": "q1", "state": "new"})
    assert [(f["event"], f["id"], f["data"]["data"]["id"]) for f in _drain_markers(stream)] == [("live", None, "q1")]
    assert _drain_markers(other_stream) == []
    stream.close()
    other_stream.close()


def test_publishing_without_redis_logs_and_goes_on(clients):
    gone = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    assert live.publish(gone, clients.redis_keys, "u", "apps.execution.done", {"id": "x"}) is False
    publisher = live.Publisher(gone, clients.redis_keys)
    assert publisher("u", "apps.execution.done", {"id": "x"}) is False
    assert publisher("u", "apps.execution.done", {"id": "x"}) is False  # resting: not even tried


def test_a_run_publishes_started_then_its_outcome(clients, make_user):
    user = make_user()
    heard = []
    invoker = Invoker(clients.db, clients.settings, clients.keys, clients.store,
                      notify=lambda owner, type_, data: heard.append((owner, type_, data)))
    doc = ex.new_execution(owner=user.id, app="files", action="ensure-folder", params={"path": "/Live"})
    clients.db.executions.insert_one(doc)
    assert invoker.run(doc["_id"])["state"] == "done"
    assert [(o, t, d["id"], d["state"]) for o, t, d in heard] == \
        [(user.id, "apps.execution.started", doc["_id"], "in_progress"),
         (user.id, "apps.execution.done", doc["_id"], "done")]
    assert "result" not in heard[-1][2]  # notices stay small
    bad = ex.new_execution(owner=user.id, app="files", action="ensure-folder", params={"path": "relative"})
    clients.db.executions.insert_one(bad)
    assert invoker.run(bad["_id"])["state"] == "dead"
    assert heard[-1][1] == "apps.execution.dead" and "absolute" in heard[-1][2]["error"]
