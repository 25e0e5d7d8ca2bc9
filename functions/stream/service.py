"""The realtime stream (GET /events/v1/stream): the caller's event log as Server-Sent Events. No Flask, no server.

Both servers drive the same `Stream`: the in-process WSGI route (functions/stream/routes.py, one thread per
stream, for `make test` and small setups) and the `stream` process (gateway/stream_server.py, gunicorn's asyncio
worker: thousands of streams, no thread each). The parts:

* `Hub`: one change stream on the log per process (runtime/changes.InsertFeed), fanned out by owner to the
  streams open in that process. It is only the fast path: the log is the truth, so a stream that sees a seq
  gap, or a hub that lost its change stream, reads the log again (nothing skipped, nothing twice).
* `Stream`: one open stream. It resumes from `Last-Event-ID` (the seq of the last event the browser saw), says
  in band when that id is older than the log keeps (`event: reset`), beats with an SSE comment so proxies keep
  the connection open, re-checks the credential while it runs (a signed-out session or a disabled account ends
  it, a bearer stream ends when its token does) and ends after `stream_max_seconds` (the browser resumes).
* `StreamSlots`: at most `streams_per_user` open streams per user, counted in Redis across every process;
  each slot is a lease the stream renews on every beat, so a process that died frees its slots by itself.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

import redis as redis_lib
from pymongo.errors import InvalidOperation, PyMongoError

from runtime import changes, events, sso_sessions, users
from runtime.errors import BadRequest, RateLimited

log = logging.getLogger(__name__)

HEADERS = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store"),
           ("X-Accel-Buffering", "no")]  # nginx and friends: pass each frame on, do not buffer
PAGE = 500  # events per log read when catching up
MAX_CATCH_UP = 10_000  # more behind than this: `reset` (the client reloads) instead of replaying it all
RECHECK_SECONDS = 30.0  # at most this (or two beats) between re-reads of the session and the account's standing
RETRY_MS = (1000, 5000)  # EventSource reconnect delay, picked at random per stream: a storm spreads out


def frame(event: dict) -> bytes:
    return f"id: {event['seq']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def live_frame(notice: dict) -> bytes:
    """A live notice (runtime/live.py): `event: live`, no `id:` — the browser's Last-Event-ID stays the log's."""
    body = {"type": notice["type"], "data": notice.get("data"), "time": notice.get("time"), "live": True}
    return f"event: live\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


def is_notice(item: dict | None) -> bool:
    return item is not None and "seq" not in item


def control(name: str, payload: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def parse_start(last_event_id: str | None, after: str | None) -> int | None:
    """Where the stream starts: after the seq in `Last-Event-ID` (a reconnect), else `?after=`, else None (from
    now on). The header wins: the browser sends it on every reconnect, and it is newer than the URL."""
    for name, raw in (("Last-Event-ID", last_event_id), ("after", after)):
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(raw.strip())
        except ValueError:
            raise BadRequest(f"{name} must be the seq of an event, got {raw[:40]!r}", code="invalid_parameter",
                             details={"parameter": name}) from None
        if value < 0:
            raise BadRequest(f"{name} must be at least 0", code="invalid_parameter", details={"parameter": name})
        return value
    return None


class StreamSlots:
    """Per-user cap on open streams (Redis sorted set: slot id → lease end). If Redis is away, streams open
    (logged): availability first, like the rate limiter."""

    _ACQUIRE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return 1
    """

    def __init__(self, redis, keys, per_user: int, lease_seconds: float):
        self.redis, self.keys, self.per_user, self.lease = redis, keys, per_user, lease_seconds
        self._acquire = redis.register_script(self._ACQUIRE)

    def acquire(self, user_id: str) -> str:
        slot, now = uuid.uuid4().hex, time.time()
        try:
            got = self._acquire(keys=[self.keys.k("sse", user_id)],
                                args=[now, now + self.lease, self.per_user, slot, int(self.lease) + 1])
        except redis_lib.RedisError as exc:
            log.warning("stream cap skipped, redis unavailable: %s", exc)
            return slot
        if not got:
            raise RateLimited(f"at most {self.per_user} open event streams per user; close one (another tab?) "
                              "or retry later", code="too_many_streams", details={"limit": self.per_user},
                              headers={"Retry-After": "10"})
        return slot

    def renew(self, user_id: str, slot: str) -> None:
        key = self.keys.k("sse", user_id)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(key, {slot: time.time() + self.lease})
            pipe.expire(key, int(self.lease) + 1)
            pipe.execute()
        except redis_lib.RedisError as exc:
            log.warning("could not renew a stream slot: %s", exc)

    def release(self, user_id: str, slot: str) -> None:
        try:
            self.redis.zrem(self.keys.k("sse", user_id), slot)
        except redis_lib.RedisError as exc:
            log.warning("could not release a stream slot: %s", exc)


class Hub:
    """One change stream per process for every open stream in it. `subscribe(owner, deliver)` calls
    `deliver(event)` from the hub's thread for each of the owner's new events, and `deliver(None)` when the
    change stream was lost (read the log). The thread starts with the first stream and stops when idle.
    With `live` (a runtime.live.Subscriber) the owner's live notices come the same way: dicts without a seq."""

    IDLE_SECONDS = 30.0

    def __init__(self, db, feed_factory=changes.InsertFeed, live=None):
        self.db, self._feed_factory, self.live = db, feed_factory, live
        self._lock = threading.Lock()
        self._by_owner: dict[str, dict[int, Callable]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None
        self._feed = None

    def subscribe(self, owner: str, deliver: Callable[[dict | None], None]) -> tuple[str, int]:
        with self._lock:
            self._next += 1
            self._by_owner.setdefault(owner, {})[self._next] = deliver
            if self.live is not None:
                self.live.start(self._notice)
            if self._thread is None:
                # opened here, not in the thread: every insert from now on reaches this subscriber
                self._feed = self._feed_factory(self.db)
                try:
                    self._feed.open()
                except PyMongoError as exc:
                    log.warning("could not open the change stream on events yet: %s", exc)
                self._thread = threading.Thread(target=self._run, args=(self._feed,), name="stream-hub",
                                                daemon=True)
                self._thread.start()
            return owner, self._next

    def unsubscribe(self, token: tuple[str, int]) -> None:
        owner, number = token
        with self._lock:
            subs = self._by_owner.get(owner)
            if subs is not None:
                subs.pop(number, None)
                if not subs:
                    del self._by_owner[owner]

    def open_streams(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_owner.values())

    def _run(self, feed) -> None:
        idle_since = None
        try:
            while True:
                try:
                    item = feed.next()
                except InvalidOperation:  # the database client was closed (shutdown, a test's teardown)
                    with self._lock:
                        self._thread = None
                    return
                if item is feed.RESYNC:
                    self._each(None, None)
                    time.sleep(0.5)
                elif item is not None:
                    self._each(item.get("owner"), item)
                with self._lock:
                    if self._by_owner:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > self.IDLE_SECONDS:
                        self._thread = None
                        if self.live is not None:
                            self.live.stop()
                        return
        finally:
            feed.close()

    def _notice(self, notice: dict) -> None:
        """From the live subscriber's thread: to the owner's streams only."""
        with self._lock:
            targets = list(self._by_owner.get(notice["owner"], {}).values())
        for deliver in targets:
            try:
                deliver(notice)
            except Exception as exc:  # noqa: BLE001 - as in _each
                log.debug("a stream could not take a live notice: %s", exc)

    def _each(self, owner: str | None, doc: dict | None) -> None:
        with self._lock:
            if owner is None:
                targets = [d for subs in self._by_owner.values() for d in subs.values()]
            else:
                targets = list(self._by_owner.get(owner, {}).values())
        if not targets:
            return
        event = events.public(doc) if doc is not None else None
        for deliver in targets:
            try:
                deliver(event)
            except Exception as exc:  # noqa: BLE001 - one closed stream must not stop the others' delivery
                log.debug("a stream could not take an event: %s", exc)


class Stream:
    """One open stream; the server calls `opening()`, then `deliver(items)` / `beat()` until `done`, then
    `close()`. Calls that may read the database are marked; `needs_read(items)` says whether `deliver` will."""

    def __init__(self, db, identity, start: int | None, *, slots: StreamSlots | None, slot: str | None,
                 heartbeat_seconds: float, ends_at: float, end_reason: str, clock=time.time):
        self.db, self.identity, self.owner = db, identity, identity.user_id
        self.start, self.slots, self.slot = start, slots, slot
        self.heartbeat, self.ends_at, self.end_reason = heartbeat_seconds, ends_at, end_reason
        self.clock = clock
        self.last = 0
        self.done = False
        self.sent = 0
        self._token = None
        self._hub = None
        self._next_beat = clock() + heartbeat_seconds
        self._recheck = min(RECHECK_SECONDS, 2.0 * heartbeat_seconds)
        self._next_check = clock() + self._recheck

    # --- wiring ----------------------------------------------------------------------------------------------
    def attach(self, hub: Hub, deliver: Callable[[dict | None], None]) -> None:
        """Subscribe before `opening()` reads the log, so nothing committed in between is missed."""
        self._hub = hub
        self._token = hub.subscribe(self.owner, deliver)

    def close(self) -> None:
        """Idempotent: unsubscribe, free the slot (reads Redis)."""
        if self._hub is not None and self._token is not None:
            self._hub.unsubscribe(self._token)
            self._token = None
        if self.slots is not None and self.slot is not None:
            self.slots.release(self.owner, self.slot)
            self.slot = None

    def seconds_to_wait(self) -> float:
        return max(0.0, min(self._next_beat, self.ends_at) - self.clock())

    # --- frames ----------------------------------------------------------------------------------------------
    def opening(self) -> bytes:
        """Reads the database: retry hint, `reset` when the resume point is gone, the events since it."""
        out = [f"retry: {random.randint(*RETRY_MS)}\n: stream open\n\n".encode()]
        current = events.current_seq(self.db, self.owner)
        if self.start is None:
            self.last = current
            return b"".join(out)
        self.last = self.start
        if self.start > current:
            out.append(control("reset", {"code": "cursor_unknown", "message": "that event id is not one of "
                                         "yours; reload, then follow from here", "seq": current}))
            self.last = current
        elif self.start < current:
            oldest = events.oldest_seq(self.db, self.owner)
            if oldest is None or oldest > self.start + 1 or current - self.start > MAX_CATCH_UP:
                resume = current if oldest is None or current - self.start > MAX_CATCH_UP else oldest - 1
                out.append(control("reset", {"code": "cursor_expired", "message": "the event log no longer "
                                             "reaches back to that id; reload, then follow from here",
                                             "oldest_seq": oldest, "seq": resume}))
                self.last = resume
        out.append(self._read_log())
        return b"".join(out)

    def needs_read(self, items: list[dict | None]) -> bool:
        last = self.last
        for item in items:
            if is_notice(item):
                continue
            if item is None or item["seq"] > last + 1:
                return True
            last = max(last, item["seq"])
        return False

    def deliver(self, items: list[dict | None]) -> bytes:
        """Frames for events the hub handed over; a gap (or a lost change stream) reads the log instead."""
        out = []
        for item in items:
            if is_notice(item):  # live notices bypass the seq: not in the log, nothing to resume
                out.append(live_frame(item))
            elif item is None or item["seq"] > self.last + 1:
                out.append(self._read_log())
            elif item["seq"] == self.last + 1:
                out.append(frame(item))
                self.last = item["seq"]
                self.sent += 1
        return b"".join(out)

    def beat(self) -> bytes:
        """Reads Redis and, every two beats (at most RECHECK_SECONDS), the database: renew the slot, re-check
        the credential, pick up anything the change stream may have missed. Ends with `event: bye` when over."""
        now = self.clock()
        if now >= self.ends_at:
            return self._end(self.end_reason)
        out = []
        if now >= self._next_check:
            self._next_check = now + self._recheck
            reason = still_allowed(self.db, self.identity)
            if reason:
                return self._end(reason)
            if events.current_seq(self.db, self.owner) > self.last:
                out.append(self._read_log())
        if self.slots is not None and self.slot is not None:
            self.slots.renew(self.owner, self.slot)
        self._next_beat = now + self.heartbeat
        out.append(b": keep-alive\n\n")
        return b"".join(out)

    def _end(self, reason: str) -> bytes:
        self.done = True
        return control("bye", {"reason": reason})

    def _read_log(self) -> bytes:
        out = []
        while True:
            items, more = events.list_events(self.db, self.owner, after=self.last, limit=PAGE)
            for item in items:
                out.append(frame(item))
                self.last = item["seq"]
                self.sent += 1
            if not more:
                return b"".join(out)


def still_allowed(db, identity) -> str | None:
    """Why a running stream must end now (the session ended, the account was disabled), or None."""
    if identity.via == "cookie" and sso_sessions.find_live(db, identity.session_id, user_id=identity.user_id) is None:
        return "session_ended"
    standing = users.standing(db, identity.user_id)
    if standing and standing.get("disabled"):
        return "account_disabled"
    return None


def open_stream(db, identity, *, last_event_id: str | None, after: str | None, slots: StreamSlots | None,
                heartbeat_seconds: float, max_seconds: float, token_expires: float | None = None,
                clock=time.time) -> Stream:
    """Checks the resume point and takes a slot (429 `too_many_streams` past the cap); the caller attaches
    the stream to its hub and sends `opening()`."""
    start = parse_start(last_event_id, after)
    now = clock()
    ends_at, reason = now + max_seconds, "max_duration"
    if token_expires is not None and token_expires < ends_at:
        ends_at, reason = token_expires, "token_expired"
    slot = slots.acquire(identity.user_id) if slots is not None else None
    return Stream(db, identity, start, slots=slots, slot=slot, heartbeat_seconds=heartbeat_seconds,
                  ends_at=ends_at, end_reason=reason, clock=clock)
