"""Is the worker that started a job still alive? A heartbeat key in Redis per worker process answers it.

rq keeps a SIGKILLed worker's job `started` until the job's timeout, so without this the push sweeper
could only resend that job's messages once their lease ran out (minutes). Our worker processes
(runtime/worker.py) refresh `worker:alive:<name>` every second with a short expiry: a few seconds after a
`kill -9` the key is gone, and whoever asks knows the job died with its worker. Workers that do not beat (an
in-process rq worker in a test) are recognised by their name and reported as unknown, never as dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from redis import RedisError

log = logging.getLogger(__name__)

NAME_PREFIX = "pcloud."
BEAT_SECONDS = 1.0
ALIVE_MS = 4000  # a worker silent this long is dead (a loaded machine may delay one beat, not four)


def worker_name() -> str:
    """A name that says "this worker beats" (the prefix), unique per process."""
    return f"{NAME_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def alive_key(keys, name: str) -> str:
    return keys.k("worker", "alive", name)


def is_alive(redis, keys, name: str | None) -> bool | None:
    """True or False for a worker that beats; None when we cannot tell (not one of ours, or no name)."""
    if not name or not name.startswith(NAME_PREFIX):
        return None
    return bool(redis.exists(alive_key(keys, name)))


def beat(redis, keys, name: str, stop: threading.Event) -> None:
    """Refresh the worker's key until `stop` is set (a daemon thread of the worker process)."""
    key = alive_key(keys, name)
    while True:
        try:
            redis.set(key, "1", px=ALIVE_MS)
        except RedisError as exc:  # Redis away: the worker cannot take jobs either; beat again when it is back
            log.warning("worker heartbeat failed: %s", exc)
        if stop.wait(BEAT_SECONDS):
            break
    try:
        redis.delete(key)
    except RedisError:
        pass


def start_beating(redis, keys, name: str) -> threading.Event:
    """Start the heartbeat thread; set the returned event to stop it (and remove the key)."""
    stop = threading.Event()
    threading.Thread(target=beat, args=(redis, keys, name, stop), name="worker-heartbeat", daemon=True).start()
    return stop
