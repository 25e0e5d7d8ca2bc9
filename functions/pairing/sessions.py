"""The pairing session state machine (CONTRACT §4), kept in Redis: start → waiting → done|failed|expired.

One hash per session with a TTL, changed only by the compare-and-set scripts in scripts.py; a finished session
never changes again. This module knows nothing of devices or MongoDB: the service (service.py) decides what a
device message means and is told, through `announce`, when a session reached waiting, failed or expired.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from functions.pairing.scripts import CAS_LUA, START_LUA
from functions.pairing.wake import WakeHub
from runtime.amqp import Reject
from runtime.errors import BadRequest, Conflict, NotFound, RateLimited, Unavailable
from runtime.ids import iso

log = logging.getLogger(__name__)

SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # no "." or "#": it sits inside routing keys
SESSION_ID_RE = re.compile(r"^[0-9a-f]{24}$")
STATUSES = ("start", "waiting", "done", "failed", "expired")
TERMINAL = ("done", "failed", "expired")
# "confirming" is internal: the button was pressed and the device is being claimed in MongoDB. Clients see
# "waiting"; the sweeper leaves it alone (the listener finishes it, or retries it on redelivery).
CONFIRMING = "confirming"
MAX_ACTIVE_SESSIONS = 5
MAX_STARTS_PER_MINUTE = 10
KEEP_FINISHED = timedelta(hours=1)  # finished sessions stay readable this long
STUCK_CONFIRMING = timedelta(minutes=5)
MAX_WAIT_SECONDS = 25.0
REASON_MAX = 64


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def check_serial(serial) -> str:
    if not isinstance(serial, str) or not SERIAL_RE.match(serial):
        raise BadRequest("serial must be 1-64 letters, digits, '-' or '_' (starting with a letter or digit)",
                         code="invalid_serial")
    return serial


@dataclass(frozen=True)
class Timing:
    ack_seconds: int = 15
    confirm_seconds: int = 120


def run_now(fn) -> None:
    fn()


class Sessions:
    """Sessions of one Redis prefix. `backlog()` says whether device events wait unhandled in the broker;
    `announce(sid, owner, serial, status)` is called (through `defer`) after a move to waiting/failed/expired."""

    def __init__(self, redis, base: str, timing: Timing, clock, backlog: Callable[[], bool],
                 announce: Callable[..., None]):
        self.redis = redis
        self.base = base
        self.timing = timing
        self.clock = clock
        self.backlog = backlog
        self.announce = announce
        self.defer = run_now  # how announcements that follow a Redis change run (listener: off its hot path)
        self._start = redis.register_script(START_LUA)
        self._cas = redis.register_script(CAS_LUA)

    def key(self, sid: str) -> str:
        return f"{self.base}session:{sid}"

    def load(self, sid: str) -> dict | None:
        raw = self.redis.hgetall(self.key(sid))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    def open(self, sid: str, owner: str, serial: str, user_name: str, now: datetime) -> tuple[datetime, str]:
        """Take the serial's slot for a new session; returns (expires, id of a session it superseded or '')."""
        expires = now + timedelta(seconds=self.timing.confirm_seconds)
        ack = now + timedelta(seconds=min(self.timing.ack_seconds, self.timing.confirm_seconds))
        result = self._start(args=[
            self.base, sid, owner, serial, ms(now), ms(ack), ms(expires), int(KEEP_FINISHED.total_seconds() * 1000),
            MAX_ACTIVE_SESSIONS, MAX_STARTS_PER_MINUTE, 60_000, user_name, iso(expires)])
        outcome, extra = result[0].decode(), result[1].decode()
        if outcome == "rate":
            retry = max(1, -(-int(extra) // 1000))
            raise RateLimited(f"at most {MAX_STARTS_PER_MINUTE} pairing starts per minute",
                              code="rate_limited", details={"retry_after": retry}, headers={"Retry-After": str(retry)})
        if outcome == "busy":
            raise Conflict("another pairing with this device is in progress", code="pairing_in_progress")
        if outcome == "too_many":
            raise Conflict(f"at most {MAX_ACTIVE_SESSIONS} pairing sessions may be open at once",
                           code="too_many_sessions")
        return expires, extra

    def owned(self, owner: str, sid: str) -> dict:
        if not isinstance(sid, str) or not SESSION_ID_RE.match(sid):
            raise NotFound("no such pairing session", code="not_found")
        session = self.load(sid)
        if session is None or session.get("owner") != owner:
            raise NotFound("no such pairing session", code="not_found")
        return session

    def for_device(self, serial: str, sid) -> dict | None:
        """The session a device message names; None when it is unknown (long gone: nothing to do)."""
        if not isinstance(sid, str) or not SESSION_ID_RE.match(sid):
            raise Reject("session_id is missing or malformed")
        session = self.load(sid)
        if session is None:
            log.info("device %s answered for unknown session %s; ignored", serial, sid)
            return None
        if session["serial"] != serial:
            raise Reject(f"session {sid} belongs to another device")
        return session

    @staticmethod
    def view(session: dict) -> dict:
        status = session["status"]
        out = {"session_id": session["session_id"], "serial": session["serial"],
               "status": "waiting" if status == CONFIRMING else status}
        if session.get("device_id"):
            out["device_id"] = session["device_id"]
        if session.get("reason"):
            out["reason"] = session["reason"]
        return out

    @staticmethod
    def next_deadline(session: dict) -> float | None:
        if session["status"] == "start":
            return int(session["ack_ms"]) / 1000
        if session["status"] == "waiting":
            return int(session["expires_ms"]) / 1000
        return None

    def wait(self, session: dict, since: str | None, wait_seconds: float) -> dict:
        """Long-poll: answer as soon as the status differs from `since`, at most `wait_seconds` later."""
        sid = session["session_id"]
        session = self.apply_deadline(session) or session
        if since is None or wait_seconds <= 0 or self.view(session)["status"] != since:
            return self.view(session)
        channel = f"{self.base}wake"
        hub = WakeHub.for_redis(self.redis)
        event = hub.register(channel, sid)
        try:
            give_up = time.monotonic() + min(wait_seconds, MAX_WAIT_SECONDS)
            while True:
                session = self.load(sid) or session
                session = self.apply_deadline(session) or session
                view = self.view(session)
                left = give_up - time.monotonic()
                if view["status"] != since or left <= 0:
                    return view
                # the next deadline of this session, so a timeout is seen even with no sweeper running
                due = self.next_deadline(session)
                nap = min(left, 1.0) if due is None else min(left, 1.0, max(0.01, due - time.time()))
                event.wait(nap)
                event.clear()
        finally:
            hub.unregister(channel, sid, event)

    def advance(self, sid: str, decide) -> tuple[dict | None, str | None]:
        """Compare-and-set loop: decide(session) -> (new_status, fields, deadline_ms) or None for no change.

        Returns (session as it is now, the status it moved to or None).
        """
        for _ in range(10):
            session = self.load(sid)
            if session is None:
                return None, None
            decision = decide(session)
            if decision is None:
                return session, None
            new, fields, deadline = decision
            now_ms = ms(self.clock())
            fields = {**fields, f"{new}_ms": str(now_ms)}  # when each status was reached (operators, benchmark)
            flat = [x for kv in fields.items() for x in kv]
            result = self._cas(args=[self.base, sid, session["status"], new, now_ms,
                                     "" if deadline is None else deadline, *flat])
            if result[0] == b"ok":
                session.update(fields, status=new)
                if new in ("waiting", "failed", "expired"):
                    # not atomic with the Redis change either way; the listener runs these off its hot path
                    self.defer(partial(self.announce, sid, session["owner"], session["serial"], new,
                                       reason=fields.get("reason")))
                return session, new
        raise Unavailable("pairing session kept changing under us; try again", details={"dependency": "redis"})

    def deadline_decision(self, session: dict, now_ms: int, answering: bool = False):
        """The timeout a session has reached by now_ms, as (status, fields, None), or None.

        A device is not blamed for our own backlog: while device events wait unhandled in the broker, its
        `pair.waiting` may be among them, so `failed: device_offline` waits up to one more ack period; a
        `pair.waiting` handled within that period (`answering`) counts as in time.
        """
        status = session["status"]
        ack_ms = int(session["ack_ms"])
        if status == "start" and now_ms >= ack_ms:
            grace_ms = ack_ms + self.timing.ack_seconds * 1000
            if now_ms < grace_ms and (answering or self.backlog()):
                return None
            return "failed", {"reason": "device_offline"}, None
        if status == "waiting" and now_ms >= int(session["expires_ms"]):
            return "expired", {}, None
        if status == CONFIRMING and now_ms >= int(session["expires_ms"]) + STUCK_CONFIRMING.total_seconds() * 1000:
            return "failed", {"reason": "internal"}, None
        return None

    def apply_deadline(self, session: dict) -> dict | None:
        now_ms = ms(self.clock())
        if self.deadline_decision(session, now_ms) is None:
            return None
        return self.advance(session["session_id"], lambda s: self.deadline_decision(s, now_ms))[0]

    def sweep_deadlines(self, limit: int = 200) -> int:
        """Time sessions out whose deadline passed, whether or not anyone polls. Returns how many moved."""
        now_ms = ms(self.clock())
        deadlines = f"{self.base}deadlines"
        moved = 0
        for raw in self.redis.zrangebyscore(deadlines, "-inf", now_ms, start=0, num=limit):
            sid = raw.decode()
            session, new = self.advance(sid, lambda s: self.deadline_decision(s, now_ms))
            if session is None or session["status"] in TERMINAL:
                self.redis.zrem(deadlines, sid)
            moved += new is not None
        return moved
