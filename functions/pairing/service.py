"""Pairing NAS devices with accounts (CONTRACT §4). Plain Python: no Flask, no pika.

The parts, by concern:
- sessions.py: the session state machine in Redis (scripts.py holds its compare-and-set Lua, wake.py the
  long-poll wake-ups, backlog.py the "is the listener behind?" check);
- runtime/devices.py: the `devices` collection (shared with phones; this service keeps the NAS rules);
- this module: what the API and the device messages mean, tying the two together with messages to the
  device and `pairing.status` / `device.online` outbox events that push turns into notifications.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from functions.pairing.backlog import BrokerBacklog
from functions.pairing.packages import BadMessage, Packages
from functions.pairing.sessions import (
    CONFIRMING,
    MAX_ACTIVE_SESSIONS,
    MAX_STARTS_PER_MINUTE,
    MAX_WAIT_SECONDS,
    REASON_MAX,
    SERIAL_RE,
    SESSION_ID_RE,
    STATUSES,
    TERMINAL,
    Sessions,
    Timing,
    check_serial,
    ms,
)
from functions.pairing.wake import WakeHub
from runtime import devices, events, refresh, users
from runtime.errors import BadRequest, Conflict, NotFound, Unavailable
from runtime.ids import iso, new_id, utcnow
from runtime.mongo import transaction

__all__ = ["PairingService", "Packages", "BadMessage",
           "Timing", "BrokerBacklog", "WakeHub", "check_serial", "device_view", "SERIAL_RE",
           "SESSION_ID_RE", "STATUSES", "TERMINAL", "CONFIRMING", "MAX_ACTIVE_SESSIONS", "MAX_STARTS_PER_MINUTE",
           "MAX_WAIT_SECONDS", "OFFLINE_AFTER"]

log = logging.getLogger(__name__)

OFFLINE_AFTER = timedelta(seconds=90)
USER_NAME_CACHE_SECONDS = 300

device_view = devices.view


def _device_event(db, owner: str, action: str, doc: dict | None, session=None) -> None:
    """devices.device.<action> in the event log (CONTRACT §8), with the device as GET /devices/v1 shows it."""
    if doc is not None:
        events.append(db, owner=owner, type=f"devices.device.{action}", subject=doc["_id"],
                      data={"device": device_view(doc)}, session=session)


class PairingService:
    """Sessions (Redis) and the NAS registry (MongoDB); `publisher` is the AmqpPublisher to devices."""

    def __init__(self, db, mongo, redis, keys, publisher, timing: Timing, clock=utcnow, backlog=None,
                 package_ack_seconds: int = 30):
        """`backlog()` says whether device events wait unhandled (default: asks the broker, cached briefly)."""
        self.db = db
        self.mongo = mongo
        self.redis = redis
        self.base = keys.k("pairing", "")
        self.publisher = publisher
        self.timing = timing
        self.clock = clock
        self.sessions = Sessions(redis, self.base, timing, clock, backlog or BrokerBacklog(publisher),
                                 self._announce)
        self.packages = Packages(db, self.send_to_device, package_ack_seconds, clock)

    @classmethod
    def from_clients(cls, clients) -> PairingService:
        s = clients.settings
        return cls(clients.db, clients.mongo, clients.redis, clients.redis_keys, clients.amqp,
                   Timing(s.pairing_ack_seconds, s.pairing_confirm_seconds),
                   package_ack_seconds=s.package_ack_seconds)

    @property
    def defer(self):
        """How outbox events that follow a Redis change are written (the listener sets a thread's submit)."""
        return self.sessions.defer

    @defer.setter
    def defer(self, fn) -> None:
        self.sessions.defer = fn

    def _load(self, sid: str) -> dict | None:
        return self.sessions.load(sid)

    # ------------------------------------------------------------------------------------------ sessions

    def start(self, owner: str, serial) -> dict:
        """POST /pairing/v1/sessions: check the device, take the serial's slot, ask the device to blink."""
        serial = check_serial(serial)
        device = devices.nas_by_serial(self.db, serial, {"owner": 1})
        if device is None:
            raise NotFound("no device with this serial has said hello yet", code="device_not_found")
        if device.get("owner") and device["owner"] != owner:
            raise Conflict("this device is paired to another account", code="device_paired_elsewhere")
        user_name = self._user_name(owner)
        sid = new_id()
        expires, superseded = self.sessions.open(sid, owner, serial, user_name, self.clock())
        if superseded:
            self._announce(superseded, owner, serial, "failed")
        message = {"type": "pair.request", "session_id": sid, "user": {"id": owner, "name": user_name},
                   "expires_at": iso(expires)}
        try:
            self.send_to_device(serial, message)
        except Unavailable:
            self.sessions.advance(sid, lambda s: ("failed", {"reason": "broker_unavailable"}, None)
                                  if s["status"] == "start" else None)
            raise
        return {"session_id": sid, "serial": serial, "status": "start", "expires_at": iso(expires)}

    def _user_name(self, owner: str) -> str:
        """The name the NAS shows; cached briefly in Redis (one database read less on the pairing hot path)."""
        key = f"{self.base}user-name:{owner}"
        cached = self.redis.get(key)
        if cached is not None:
            return cached.decode()
        name = users.display_name(self.db, owner)
        self.redis.set(key, name, ex=USER_NAME_CACHE_SECONDS)
        return name

    def send_to_device(self, serial: str, message: dict) -> None:
        """Confirmed, persistent, into the device's own queue, whichever type it declared it with (CONTRACT §4);
        for a device that speaks MQTT, into its MQTT session (the transport its last hello came by)."""
        device = devices.nas_by_serial(self.db, serial, {"transport": 1})
        mqtt = device is not None and device.get("transport") == "mqtt"
        self.publisher.publish_to_device(serial, message, own_queue=not mqtt)

    def get(self, owner: str, sid: str) -> dict:
        """GET /pairing/v1/sessions/{id}; also applies a deadline that has passed (nobody else may have)."""
        session = self.sessions.owned(owner, sid)
        session = self.sessions.apply_deadline(session) or session
        return self.view(session)

    def wait(self, owner: str, sid: str, since: str | None, wait_seconds: float) -> dict:
        """Long-poll: answer as soon as the status differs from `since`, at most `wait_seconds` later."""
        return self.sessions.wait(self.sessions.owned(owner, sid), since, wait_seconds)

    view = staticmethod(Sessions.view)

    def sweep_deadlines(self, limit: int = 200) -> int:
        """Time sessions out whose deadline passed, whether or not anyone polls. Returns how many moved."""
        return self.sessions.sweep_deadlines(limit)

    def _announce(self, sid: str, owner: str, serial: str, status: str, device_id: str | None = None,
                  session=None, reason: str | None = None) -> None:
        payload = {"session_id": sid, "status": status, "serial": serial}
        if device_id:
            payload["device_id"] = device_id
        events.emit(self.db, "pairing.status", owner, payload, session=session)
        # the log too (`pairing.session.waiting|done|failed|expired`): browsers follow it on /events/v1/stream, the
        # notifier's rules see the results (with the failure's reason)
        events.append(self.db, owner=owner, type=f"pairing.session.{status}", subject=sid,
                      data={**payload, **({"reason": reason} if reason else {})}, session=session)

    # ---------------------------------------------------------------------------------- device messages

    def on_waiting(self, serial: str, sid) -> None:
        session = self.sessions.for_device(serial, sid)
        if session is None:
            return
        now_ms = ms(self.clock())

        def decide(s):
            late = self.sessions.deadline_decision(s, now_ms, answering=True)
            if late:
                return late
            if s["status"] == "start":
                return "waiting", {}, int(s["expires_ms"])
            return None

        self.sessions.advance(sid, decide)

    def on_rejected(self, serial: str, sid, reason) -> None:
        session = self.sessions.for_device(serial, sid)
        if session is None:
            return
        reason = reason if isinstance(reason, str) and reason.strip() else "rejected"
        reason = reason.strip()[:REASON_MAX]
        self.sessions.advance(sid, lambda s: ("failed", {"reason": reason}, None)
                              if s["status"] in ("start", "waiting") else None)

    def on_confirmed(self, serial: str, sid) -> None:
        """The button was pressed: claim the device for the session's user, then tell the device."""
        session = self.sessions.for_device(serial, sid)
        if session is None:
            return
        now_ms = ms(self.clock())

        def decide(s):
            if s["status"] in ("start", "waiting"):
                if now_ms > int(s["expires_ms"]):
                    return "expired", {}, None
                return CONFIRMING, {}, None
            return None

        session, _ = self.sessions.advance(sid, decide)
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
            self.sessions.advance(sid, lambda s: ("failed", {"reason": "paired_elsewhere"}, None)
                                  if s["status"] == CONFIRMING else None)
            return
        self.sessions.advance(sid, lambda s: ("done", {"device_id": device_id}, None)
                              if s["status"] == CONFIRMING else None)
        self.send_to_device(serial, {"type": "pair.completed", "session_id": sid})

    def _claim(self, owner: str, serial: str, sid: str) -> str | None:
        """In one transaction: the device becomes the user's (unless someone else owns it) + the outbox event."""

        def work(session):
            device_id = devices.claim_nas(self.db, owner, serial, self.clock(), session=session)
            if device_id is not None:
                self._announce(sid, owner, serial, "done", device_id, session=session)
                _device_event(self.db, owner, "paired", devices.get_owned(self.db, owner, device_id, session), session)
            return device_id

        return transaction(self.mongo, work)

    # ----------------------------------------------------------------------------------------- registry

    def hello(self, serial: str, model, firmware, transport: str = "amqp") -> str:
        """A device said hello (at start and every 30 s): register it on first sight, mark it online.
        `transport` (amqp|mqtt) is how the hello came, so messages to the device go the same way."""
        now = self.clock()
        fields = {"online": True, "last_seen": now, "transport": transport}
        if isinstance(model, str):
            fields["model"] = model[:REASON_MAX]
        if isinstance(firmware, str):
            fields["firmware"] = firmware[:REASON_MAX]
        device_id, before = devices.record_hello(self.db, serial, fields, now)
        if before is not None and not before.get("online") and before.get("owner"):
            events.emit(self.db, "device.online", before["owner"], {"device_id": device_id, "online": True})
            now_doc = devices.get_owned(self.db, before["owner"], device_id)
            if now_doc is not None:
                _device_event(self.db, before["owner"], "online", now_doc)
        return device_id

    def mark_offline(self, limit: int = 500) -> int:
        """NAS boxes silent for 90 s go offline (with a device.online event for their owner)."""
        cutoff = self.clock() - OFFLINE_AFTER
        moved = 0
        for device_id in devices.silent_nas(self.db, cutoff, limit):

            def work(session, device_id=device_id):
                found = devices.set_offline(self.db, device_id, cutoff, session=session)
                if found is not None and found.get("owner"):
                    events.emit(self.db, "device.online", found["owner"], {"device_id": device_id, "online": False},
                                session=session)
                    _device_event(self.db, found["owner"], "offline",
                                  devices.get_owned(self.db, found["owner"], device_id, session), session)
                return found is not None

            moved += bool(transaction(self.mongo, work))
        return moved

    def went_offline(self, serial: str) -> bool:
        """`offline`: a device stopping cleanly, or the MQTT last will the broker sends for a lost one.
        Offline at once (instead of after 90 s of silence), with the same events; False when it already was."""
        device = devices.nas_by_serial(self.db, serial, {"_id": 1})
        if device is None:
            return False
        cutoff = self.clock() + timedelta(milliseconds=1)

        def work(session):
            found = devices.set_offline(self.db, device["_id"], cutoff, session=session)
            if found is not None and found.get("owner"):
                events.emit(self.db, "device.online", found["owner"], {"device_id": device["_id"], "online": False},
                            session=session)
                _device_event(self.db, found["owner"], "offline",
                              devices.get_owned(self.db, found["owner"], device["_id"], session), session)
            return found is not None

        return bool(transaction(self.mongo, work))

    def list_devices(self, owner: str, cursor: str | None, limit: int) -> dict:
        if cursor and len(cursor) > 64:
            raise BadRequest("cursor is not one this endpoint handed out", code="invalid_cursor")
        docs, more = devices.list_owned(self.db, owner, cursor or None, limit)
        return {"items": [device_view(d) for d in docs], "next_cursor": docs[-1]["_id"] if more and docs else None}

    def unpair(self, owner: str, device_id: str) -> None:
        """A NAS goes back to unowned (and is told so); a phone is forgotten."""
        doc = devices.get_owned(self.db, owner, device_id)
        if doc is None:
            raise NotFound("no such device", code="not_found")
        if doc.get("kind") != "nas":
            def forget(session):
                if devices.forget(self.db, owner, device_id, session):
                    _device_event(self.db, owner, "unpaired", doc, session)

            transaction(self.mongo, forget)
            refresh.revoke_device(self.db, owner, device_id, utcnow())  # the phone's sign-in ends with it
            return

        def release(session):
            released = devices.release_nas(self.db, owner, device_id, session)
            if released:
                _device_event(self.db, owner, "unpaired", {**doc, "owner": None, "paired_at": None}, session)
            return released

        if not transaction(self.mongo, release):
            raise NotFound("no such device", code="not_found")
        try:
            self.send_to_device(doc["serial"], {"type": "unpaired"})
        except Unavailable as exc:
            # the record is already unowned; the device learns it when it next pairs
            log.warning("could not tell device %s it was unpaired: %s", doc["serial"], exc)
