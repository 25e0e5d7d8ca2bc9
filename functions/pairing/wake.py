"""Long-poll wake-ups: one Redis pub/sub subscription per process, shared by every waiting request.

Status changes publish the session id on `<prefix>pairing:wake` (functions/pairing/scripts.py); a waiter that
misses one (Redis away) still sees the change on its next short poll.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


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
