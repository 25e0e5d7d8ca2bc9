"""Pairing sessions and the NAS device registry (CONTRACT §4). Plain Python: no Flask, no pika.

Sessions live in Redis (they are short-lived and polled often): one hash per session with a TTL, changed
only by compare-and-set scripts so the listener, the deadline sweeper and a polling request can race
without a session ever moving backwards (start → waiting → done|failed|expired; a finished session never
changes again). The device registry is the MongoDB `devices` collection, shared with phones.

Status changes wake long-polls through one Redis pub/sub channel and write `pairing.status` outbox events
that push turns into notifications.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime import amqp, events
from runtime.amqp import Reject
from runtime.errors import BadRequest, Conflict, NotFound, RateLimited, Unavailable
from runtime.ids import iso, new_id, utcnow
from runtime.mongo import register_indexes, transaction

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
OFFLINE_AFTER = timedelta(seconds=90)
MAX_WAIT_SECONDS = 25.0
REASON_MAX = 64
USER_NAME_CACHE_SECONDS = 300

# KEYS: none (single-instance Redis; keys are built from ARGV[1], the prefix)
# ARGV: base, sid, owner, serial, now_ms, ack_ms, expires_ms, keep_ms, max_active, max_starts, window_ms,
#       user_name, expires_iso
_START_LUA = """
local base, sid, owner, serial = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, ack, expires, keep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local max_active, max_starts, window = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local starts = base .. 'starts:' .. owner
local active = base .. 'active:' .. owner
local lock = base .. 'serial:' .. serial
local deadlines = base .. 'deadlines'
redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - window)
if redis.call('ZCARD', starts) >= max_starts then
  local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
  return {'rate', tostring(tonumber(oldest[2]) + window - now)}
end
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
local count = redis.call('ZCARD', active)
local old = redis.call('GET', lock)
local supersede = false
if old then
  local okey = base .. 'session:' .. old
  local ostatus = redis.call('HGET', okey, 'status')
  if ostatus == 'start' or ostatus == 'waiting' or ostatus == 'confirming' then
    if redis.call('HGET', okey, 'owner') ~= owner or ostatus == 'confirming' then
      return {'busy', old}
    end
    supersede = true
    if redis.call('ZSCORE', active, old) then count = count - 1 end
  end
end
if count >= max_active then return {'too_many', tostring(count)} end
if supersede then
  local okey = base .. 'session:' .. old
  redis.call('HSET', okey, 'status', 'failed', 'reason', 'superseded', 'finished_ms', now)
  redis.call('ZREM', active, old)
  redis.call('ZREM', deadlines, old)
end
local key = base .. 'session:' .. sid
redis.call('HSET', key, 'session_id', sid, 'owner', owner, 'serial', serial, 'status', 'start',
  'created_ms', now, 'ack_ms', ack, 'expires_ms', expires, 'user_name', ARGV[12], 'expires_at', ARGV[13])
redis.call('PEXPIREAT', key, expires + keep)
redis.call('SET', lock, sid, 'PXAT', expires + 5000)
redis.call('ZADD', active, expires, sid)
redis.call('PEXPIREAT', active, expires + 5000)
redis.call('ZADD', starts, now, sid)
redis.call('PEXPIRE', starts, window)
redis.call('ZADD', deadlines, ack, sid)
if supersede then
  redis.call('PUBLISH', base .. 'wake', old)
  return {'ok', old}
end
return {'ok', ''}
"""

# Compare-and-set one session's status. ARGV: base, sid, expected, new, now_ms, deadline_ms ('' = none),
# then field/value pairs to set. Terminal statuses release the serial lock and the user's active slot.
_CAS_LUA = """
local base, sid, expected, new, now, deadline = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = base .. 'session:' .. sid
local status = redis.call('HGET', key, 'status')
if not status then return {'missing', ''} end
if status ~= expected then return {'stale', status} end
redis.call('HSET', key, 'status', new)
for i = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
if new == 'done' or new == 'failed' or new == 'expired' then
  redis.call('HSET', key, 'finished_ms', now)
  redis.call('ZREM', base .. 'deadlines', sid)
  local owner = redis.call('HGET', key, 'owner')
  redis.call('ZREM', base .. 'active:' .. owner, sid)
  local lock = base .. 'serial:' .. redis.call('HGET', key, 'serial')
  if redis.call('GET', lock) == sid then redis.call('DEL', lock) end
elseif deadline ~= '' then
  redis.call('ZADD', base .. 'deadlines', deadline, sid)
end
redis.call('PUBLISH', base .. 'wake', sid)
return {'ok', status}
"""


@register_indexes
def _indexes(db) -> None:
    db.devices.create_index([("serial", ASCENDING)], unique=True, partialFilterExpression={"kind": "nas"},
                            name="nas_serial_unique")
    db.devices.create_index([("owner", ASCENDING), ("_id", ASCENDING)])
    db.devices.create_index([("kind", ASCENDING), ("online", ASCENDING), ("last_seen", ASCENDING)])


def _ms(dt: datetime) -> int:
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


class WakeHub:
    """One pub/sub subscription per process wakes every long-poll waiting on a session of this Redis."""

    _hubs: dict[str, WakeHub] = {}
    _hubs_lock = threading.Lock()

    @classmethod
    def for_redis(cls, redis) -> WakeHub:
        kwargs = redis.connection_pool.connection_kwargs
        ident = f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}:{kwargs.get('path')}"
        with cls._hubs_lock:
            hub = cls._hubs.get(ident)
            if hub is None:
                hub = cls._hubs[ident] = cls(redis)
            return hub

    def __init__(self, redis):
        # a client of its own: the subscription outlives whichever request or test built the hub
        pool = redis.connection_pool
        self.redis = type(redis)(connection_pool=type(pool)(connection_class=pool.connection_class,
                                                             **pool.connection_kwargs))
        self._lock = threading.Lock()
        self._waiters: dict[tuple[str, str], set[threading.Event]] = {}
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe("*pairing:wake")
                while True:
                    msg = pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "pmessage":
                        channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                        data = msg["data"].decode() if isinstance(msg["data"], bytes) else str(msg["data"])
                        with self._lock:
                            waiters = list(self._waiters.get((channel, data), ()))
                        for event in waiters:
                            event.set()
            except Exception as exc:  # noqa: BLE001 - Redis away: waiters fall back to polling, we resubscribe
                log.warning("pairing wake-up subscription lost (%s); resubscribing", exc.__class__.__name__)
                time.sleep(1.0)
            finally:
                try:
                    pubsub.close()
                except Exception as exc:  # noqa: BLE001 - closing a broken connection
                    log.debug("closing the wake-up subscription: %s", exc)

    def register(self, channel: str, sid: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault((channel, sid), set()).add(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pairing-wake", daemon=True)
                self._thread.start()
        return event

    def unregister(self, channel: str, sid: str, event: threading.Event) -> None:
        with self._lock:
            found = self._waiters.get((channel, sid))
            if found is not None:
                found.discard(event)
                if not found:
                    del self._waiters[(channel, sid)]


def _run_now(fn) -> None:
    fn()


class BrokerBacklog:
    """Are device events waiting in the server's queue? Asked at most every `every` seconds."""

    def __init__(self, publisher, every: float = 0.5):
        self.publisher = publisher
        self.every = every
        self._checked = 0.0
        self._value = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked < self.every:
                return self._value
            try:
                self._value = self.publisher.queue_depth(amqp.EVENTS_QUEUE) > 0
            except Unavailable as exc:
                log.warning("could not read the device events backlog: %s", exc)
                self._value = False
            self._checked = time.monotonic()
            return self._value


class PairingService:
    """Sessions (Redis) and the NAS registry (MongoDB); `publisher` is the AmqpPublisher to devices."""

    def __init__(self, db, mongo, redis, keys, publisher, timing: Timing, clock=utcnow, backlog=None):
        """`backlog()` says whether device events wait unhandled (default: asks the broker, cached briefly)."""
        self.db = db
        self.mongo = mongo
        self.redis = redis
        self.base = keys.k("pairing", "")
        self.publisher = publisher
        self.timing = timing
        self.clock = clock
        self._backlog = backlog or BrokerBacklog(publisher)
        self.defer = _run_now  # how outbox events that follow a Redis change are written (listener: a thread)
        self._start = redis.register_script(_START_LUA)
        self._cas = redis.register_script(_CAS_LUA)

    @classmethod
    def from_clients(cls, clients) -> PairingService:
        s = clients.settings
        return cls(clients.db, clients.mongo, clients.redis, clients.redis_keys, clients.amqp,
                   Timing(s.pairing_ack_seconds, s.pairing_confirm_seconds))

    # ------------------------------------------------------------------------------------------ sessions

    def _key(self, sid: str) -> str:
        return f"{self.base}session:{sid}"

    def _load(self, sid: str) -> dict | None:
        raw = self.redis.hgetall(self._key(sid))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    def start(self, owner: str, serial) -> dict:
        """POST /pairing/v1/sessions: check the device, take the serial's slot, ask the device to blink."""
        serial = check_serial(serial)
        device = self.db.devices.find_one({"kind": "nas", "serial": serial}, {"owner": 1})
        if device is None:
            raise NotFound("no device with this serial has said hello yet", code="device_not_found")
        if device.get("owner") and device["owner"] != owner:
            raise Conflict("this device is paired to another account", code="device_paired_elsewhere")
        user_name = self._user_name(owner)
        now = self.clock()
        sid = new_id()
        expires = now + timedelta(seconds=self.timing.confirm_seconds)
        ack = now + timedelta(seconds=min(self.timing.ack_seconds, self.timing.confirm_seconds))
        result = self._start(args=[
            self.base, sid, owner, serial, _ms(now), _ms(ack), _ms(expires), int(KEEP_FINISHED.total_seconds() * 1000),
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
        if extra:
            self._announce(extra, owner, serial, "failed")
        message = {"type": "pair.request", "session_id": sid, "user": {"id": owner, "name": user_name},
                   "expires_at": iso(expires)}
        try:
            self.send_to_device(serial, message)
        except Unavailable:
            self._advance(sid, lambda s: ("failed", {"reason": "broker_unavailable"}, None)
                          if s["status"] == "start" else None)
            raise
        return {"session_id": sid, "serial": serial, "status": "start", "expires_at": iso(expires)}

    def _user_name(self, owner: str) -> str:
        """The name the NAS shows; cached briefly in Redis (one database read less on the pairing hot path)."""
        key = f"{self.base}user-name:{owner}"
        cached = self.redis.get(key)
        if cached is not None:
            return cached.decode()
        name = (self.db.users.find_one({"_id": owner}, {"name": 1}) or {}).get("name") or ""
        self.redis.set(key, name, ex=USER_NAME_CACHE_SECONDS)
        return name

    def send_to_device(self, serial: str, message: dict) -> None:
        """Confirmed, persistent, into the device's own queue, whichever type it declared it with (CONTRACT §4)."""
        self.publisher.publish_to_device(serial, message)

    def get(self, owner: str, sid: str) -> dict:
        """GET /pairing/v1/sessions/{id}; also applies a deadline that has passed (nobody else may have)."""
        session = self._owned(owner, sid)
        session = self._apply_deadline(session) or session
        return self.view(session)

    def wait(self, owner: str, sid: str, since: str | None, wait_seconds: float) -> dict:
        """Long-poll: answer as soon as the status differs from `since`, at most `wait_seconds` later."""
        session = self._owned(owner, sid)
        session = self._apply_deadline(session) or session
        if since is None or wait_seconds <= 0 or self.view(session)["status"] != since:
            return self.view(session)
        channel = f"{self.base}wake"
        hub = WakeHub.for_redis(self.redis)
        event = hub.register(channel, sid)
        try:
            give_up = time.monotonic() + min(wait_seconds, MAX_WAIT_SECONDS)
            while True:
                session = self._load(sid) or session
                session = self._apply_deadline(session) or session
                view = self.view(session)
                left = give_up - time.monotonic()
                if view["status"] != since or left <= 0:
                    return view
                # the next deadline of this session, so a timeout is seen even with no sweeper running
                due = self._next_deadline(session)
                nap = min(left, 1.0) if due is None else min(left, 1.0, max(0.01, due - time.time()))
                event.wait(nap)
                event.clear()
        finally:
            hub.unregister(channel, sid, event)

    def _owned(self, owner: str, sid: str) -> dict:
        if not isinstance(sid, str) or not SESSION_ID_RE.match(sid):
            raise NotFound("no such pairing session", code="not_found")
        session = self._load(sid)
        if session is None or session.get("owner") != owner:
            raise NotFound("no such pairing session", code="not_found")
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
    def _next_deadline(session: dict) -> float | None:
        if session["status"] == "start":
            return int(session["ack_ms"]) / 1000
        if session["status"] == "waiting":
            return int(session["expires_ms"]) / 1000
        return None

    def _advance(self, sid: str, decide) -> tuple[dict | None, str | None]:
        """Compare-and-set loop: decide(session) -> (new_status, fields, deadline_ms) or None for no change.

        Returns (session as it is now, the status it moved to or None).
        """
        for _ in range(10):
            session = self._load(sid)
            if session is None:
                return None, None
            decision = decide(session)
            if decision is None:
                return session, None
            new, fields, deadline = decision
            now_ms = _ms(self.clock())
            fields = {**fields, f"{new}_ms": str(now_ms)}  # when each status was reached (operators, benchmark)
            flat = [x for kv in fields.items() for x in kv]
            result = self._cas(args=[self.base, sid, session["status"], new, now_ms,
                                     "" if deadline is None else deadline, *flat])
            if result[0] == b"ok":
                session.update(fields, status=new)
                if new in ("waiting", "failed", "expired"):
                    # not atomic with the Redis change either way; the listener runs these off its hot path
                    self.defer(partial(self._announce, sid, session["owner"], session["serial"], new))
                return session, new
        raise Unavailable("pairing session kept changing under us; try again", details={"dependency": "redis"})

    def _announce(self, sid: str, owner: str, serial: str, status: str, device_id: str | None = None,
                  session=None) -> None:
        payload = {"session_id": sid, "status": status, "serial": serial}
        if device_id:
            payload["device_id"] = device_id
        events.emit(self.db, "pairing.status", owner, payload, session=session)

    def _deadline_decision(self, session: dict, now_ms: int, answering: bool = False):
        """The timeout a session has reached by now_ms, as (status, fields, None), or None.

        A device is not blamed for our own backlog: while device events wait unhandled in the broker, its
        `pair.waiting` may be among them, so `failed: device_offline` waits up to one more ack period; a
        `pair.waiting` handled within that period (`answering`) counts as in time.
        """
        status = session["status"]
        ack_ms = int(session["ack_ms"])
        if status == "start" and now_ms >= ack_ms:
            grace_ms = ack_ms + self.timing.ack_seconds * 1000
            if now_ms < grace_ms and (answering or self._backlog()):
                return None
            return "failed", {"reason": "device_offline"}, None
        if status == "waiting" and now_ms >= int(session["expires_ms"]):
            return "expired", {}, None
        if status == CONFIRMING and now_ms >= int(session["expires_ms"]) + STUCK_CONFIRMING.total_seconds() * 1000:
            return "failed", {"reason": "internal"}, None
        return None

    def _apply_deadline(self, session: dict) -> dict | None:
        now_ms = _ms(self.clock())
        if self._deadline_decision(session, now_ms) is None:
            return None
        return self._advance(session["session_id"], lambda s: self._deadline_decision(s, now_ms))[0]

    def sweep_deadlines(self, limit: int = 200) -> int:
        """Time sessions out whose deadline passed, whether or not anyone polls. Returns how many moved."""
        now_ms = _ms(self.clock())
        deadlines = f"{self.base}deadlines"
        moved = 0
        for raw in self.redis.zrangebyscore(deadlines, "-inf", now_ms, start=0, num=limit):
            sid = raw.decode()
            session, new = self._advance(sid, lambda s: self._deadline_decision(s, now_ms))
            if session is None or session["status"] in TERMINAL:
                self.redis.zrem(deadlines, sid)
            moved += new is not None
        return moved

    # ---------------------------------------------------------------------------------- device messages

    def _session_for(self, serial: str, sid) -> dict | None:
        """The session a device message names; None when it is unknown (long gone: nothing to do)."""
        if not isinstance(sid, str) or not SESSION_ID_RE.match(sid):
            raise Reject("session_id is missing or malformed")
        session = self._load(sid)
        if session is None:
            log.info("device %s answered for unknown session %s; ignored", serial, sid)
            return None
        if session["serial"] != serial:
            raise Reject(f"session {sid} belongs to another device")
        return session

    def on_waiting(self, serial: str, sid) -> None:
        session = self._session_for(serial, sid)
        if session is None:
            return
        now_ms = _ms(self.clock())

        def decide(s):
            late = self._deadline_decision(s, now_ms, answering=True)
            if late:
                return late
            if s["status"] == "start":
                return "waiting", {}, int(s["expires_ms"])
            return None

        self._advance(sid, decide)

    def on_rejected(self, serial: str, sid, reason) -> None:
        session = self._session_for(serial, sid)
        if session is None:
            return
        reason = reason if isinstance(reason, str) and reason.strip() else "rejected"
        reason = reason.strip()[:REASON_MAX]
        self._advance(sid, lambda s: ("failed", {"reason": reason}, None)
                      if s["status"] in ("start", "waiting") else None)

    def on_confirmed(self, serial: str, sid) -> None:
        """The button was pressed: claim the device for the session's user, then tell the device."""
        session = self._session_for(serial, sid)
        if session is None:
            return
        now_ms = _ms(self.clock())

        def decide(s):
            if s["status"] in ("start", "waiting"):
                if now_ms > int(s["expires_ms"]):
                    return "expired", {}, None
                return CONFIRMING, {}, None
            return None

        session, _ = self._advance(sid, decide)
        if session is None:
            return
        if session["status"] == "done":
            # a repeated confirmation: the device may have missed pair.completed, say it again
            self.send_to_device(serial, {"type": "pair.completed", "session_id": sid})
            return
        if session["status"] != CONFIRMING:
            return
        owner = session["owner"]
        device_id = self._claim(owner, serial, sid)
        if device_id is None:
            self._advance(sid, lambda s: ("failed", {"reason": "paired_elsewhere"}, None)
                          if s["status"] == CONFIRMING else None)
            return
        self._advance(sid, lambda s: ("done", {"device_id": device_id}, None) if s["status"] == CONFIRMING else None)
        self.send_to_device(serial, {"type": "pair.completed", "session_id": sid})

    def _claim(self, owner: str, serial: str, sid: str) -> str | None:
        """In one transaction: the device becomes the user's (unless someone else owns it) + the outbox event."""

        def work(session):
            now = self.clock()
            doc = self.db.devices.find_one_and_update(
                {"kind": "nas", "serial": serial, "$or": [{"owner": None}, {"owner": owner}]},
                {"$set": {"owner": owner, "paired_at": now}},
                projection={"_id": 1}, return_document=ReturnDocument.AFTER, session=session)
            if doc is None:
                return None
            self._announce(sid, owner, serial, "done", doc["_id"], session=session)
            return doc["_id"]

        return transaction(self.mongo, work)

    # ----------------------------------------------------------------------------------------- registry

    def hello(self, serial: str, model, firmware) -> str:
        """A device said hello (at start and every 30 s): register it on first sight, mark it online."""
        now = self.clock()
        fields = {"online": True, "last_seen": now}
        if isinstance(model, str):
            fields["model"] = model[:REASON_MAX]
        if isinstance(firmware, str):
            fields["firmware"] = firmware[:REASON_MAX]
        insert = {"_id": new_id(), "name": f"NAS {serial}", "owner": None, "paired_at": None, "created_at": now}
        for attempt in (1, 2):
            try:
                before = self.db.devices.find_one_and_update(
                    {"kind": "nas", "serial": serial}, {"$set": fields, "$setOnInsert": insert},
                    upsert=True, projection={"_id": 1, "online": 1, "owner": 1},
                    return_document=ReturnDocument.BEFORE)
                break
            except DuplicateKeyError:
                if attempt == 2:
                    raise
        if before is None:
            return insert["_id"]
        if not before.get("online") and before.get("owner"):
            events.emit(self.db, "device.online", before["owner"], {"device_id": before["_id"], "online": True})
        return before["_id"]

    def mark_offline(self, limit: int = 500) -> int:
        """NAS boxes silent for 90 s go offline (with a device.online event for their owner)."""
        cutoff = self.clock() - OFFLINE_AFTER
        query = {"kind": "nas", "online": True, "last_seen": {"$lt": cutoff}}
        moved = 0
        for doc in self.db.devices.find(query, {"_id": 1}).limit(limit):

            def work(session, device_id=doc["_id"]):
                found = self.db.devices.find_one_and_update(
                    {**query, "_id": device_id}, {"$set": {"online": False}},
                    projection={"owner": 1}, session=session)
                if found is not None and found.get("owner"):
                    events.emit(self.db, "device.online", found["owner"], {"device_id": device_id, "online": False},
                                session=session)
                return found is not None

            moved += bool(transaction(self.mongo, work))
        return moved

    def list_devices(self, owner: str, cursor: str | None, limit: int) -> dict:
        query: dict = {"owner": owner}
        if cursor:
            if len(cursor) > 64:
                raise BadRequest("cursor is not one this endpoint handed out", code="invalid_cursor")
            query["_id"] = {"$gt": cursor}
        docs = list(self.db.devices.find(query).sort("_id", ASCENDING).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return {"items": [device_view(d) for d in docs], "next_cursor": docs[-1]["_id"] if more and docs else None}

    def unpair(self, owner: str, device_id: str) -> None:
        """A NAS goes back to unowned (and is told so); a phone is forgotten."""
        doc = self.db.devices.find_one({"_id": device_id, "owner": owner})
        if doc is None:
            raise NotFound("no such device", code="not_found")
        if doc.get("kind") != "nas":
            self.db.devices.delete_one({"_id": device_id, "owner": owner})
            return
        result = self.db.devices.update_one({"_id": device_id, "owner": owner},
                                            {"$set": {"owner": None, "paired_at": None}})
        if result.matched_count == 0:
            raise NotFound("no such device", code="not_found")
        try:
            self.send_to_device(doc["serial"], {"type": "unpaired"})
        except Unavailable as exc:
            # the record is already unowned; the device learns it when it next pairs
            log.warning("could not tell device %s it was unpaired: %s", doc["serial"], exc)


def device_view(doc: dict) -> dict:
    out = {"device_id": doc["_id"], "kind": doc.get("kind"), "name": doc.get("name")}
    if doc.get("kind") == "nas":
        out["serial"] = doc.get("serial")
    out.update(online=bool(doc.get("online")), last_seen=iso(doc.get("last_seen")), paired_at=iso(doc.get("paired_at")))
    return out
