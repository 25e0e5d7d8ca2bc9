"""Live notices: small, best-effort "this just changed" messages for a user's open streams, beside the log.

Some states are a view, not history (an app execution's started/done/failed/dead): appending each change to
the event log would cost a transaction per change and feed the app processor its own executions. They are
published instead on one Redis channel per deployment (`<prefix>live`) as JSON `{owner, type, data, time}`;
each stream process subscribes once (`Subscriber`) and hands a notice to that owner's open streams, which send
it without an SSE `id:` (nothing to resume: a page that reconnects lists again). A notice lost while Redis or a
stream is down is not sent later, and publishing never fails the caller.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import redis as redis_lib

log = logging.getLogger(__name__)
BREAK_SECONDS = 5.0  # after a failed publish, skip publishing this long (a Redis that is away costs no timeouts)
BACKOFF = (0.5, 10.0)  # the subscriber's reconnect pause: first, longest


def channel(keys) -> str:
    return keys.k("live")


def encode(owner: str, type_: str, data: dict) -> str:
    return json.dumps({"owner": owner, "type": type_, "data": data, "time": time.time()}, separators=(",", ":"),
                      default=str)


def publish(redis, keys, owner: str, type_: str, data: dict) -> bool:
    """One notice on the deployment's channel; False (logged) when Redis did not take it."""
    try:
        redis.publish(channel(keys), encode(owner, type_, data))
        return True
    except redis_lib.RedisError as exc:
        log.warning("live notice %s not published: %s", type_, exc)
        return False


class Publisher:
    """`publish` for a busy process: after a failure it skips notices for BREAK_SECONDS instead of waiting on
    a Redis that is away at every state change."""

    def __init__(self, redis, keys):
        self.redis, self.keys = redis, keys
        self._resting_until = 0.0

    def __call__(self, owner: str, type_: str, data: dict) -> bool:
        if time.monotonic() < self._resting_until:
            return False
        if publish(self.redis, self.keys, owner, type_, data):
            return True
        self._resting_until = time.monotonic() + BREAK_SECONDS
        return False


class Subscriber:
    """One Redis subscription per process, on its own thread: `start(on_notice)` calls `on_notice(notice)` for
    every notice until `stop()`; when Redis goes away it reconnects with a growing pause."""

    def __init__(self, redis, keys):
        self.redis, self.channel = redis, channel(keys)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()  # set while the subscription is up (tests wait on it)

    def start(self, on_notice: Callable[[dict], None]) -> None:
        """Idempotent; a `stop()` not yet acted on is taken back."""
        with self._lock:
            self._stop.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(on_notice,), name="stream-live",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _ending(self) -> bool:
        with self._lock:
            if self._stop.is_set():
                self._thread = None
                return True
            return False

    def _run(self, on_notice) -> None:
        pause = BACKOFF[0]
        while not self._ending():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    self.subscribed.set()  # after the first read: the subscription is confirmed
                    pause = BACKOFF[0]
                    if message is not None and message.get("type") == "message":
                        notice = _parse(message.get("data"))
                        if notice is not None:
                            on_notice(notice)
            except (redis_lib.RedisError, OSError, ValueError) as exc:  # ValueError: the process's client was
                # closed under the read (shutdown, a test's teardown); a new subscription opens a new connection
                log.warning("live notices paused, redis unavailable: %s", exc)
                self._stop.wait(pause)
                pause = min(pause * 2, BACKOFF[1])
            finally:
                self.subscribed.clear()
                try:
                    pubsub.close()
                except (redis_lib.RedisError, OSError):
                    pass


def _parse(raw) -> dict | None:
    try:
        notice = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(notice, dict) or not isinstance(notice.get("owner"), str) or not isinstance(
            notice.get("type"), str):
        return None
    notice.pop("seq", None)  # a notice never looks like a log event to a stream
    return notice
