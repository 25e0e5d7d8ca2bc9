"""Per-user (or per-IP when anonymous) fixed-window rate limit kept in Redis.

Far from the limit, counts are batched: each process adds its requests to Redis every 50 ms in one
pipeline, so a request costs no Redis round trip. Near the limit (within max(50, limit/5) of it, and always
for small limits) every request is counted synchronously, so the 429 lands exactly where it should.
"""

from __future__ import annotations

import logging
import threading
import time

import redis as redis_lib

from runtime.errors import RateLimited

log = logging.getLogger(__name__)


class RateLimiter:
    """If Redis is away, requests pass (logged): availability first."""

    def __init__(self, redis, keys, per_minute: int, flush_interval: float = 0.05):
        self.redis = redis
        self.keys = keys
        self.per_minute = per_minute
        self.margin = max(50, per_minute // 5)
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._known: dict[str, int] = {}
        self._flusher: threading.Thread | None = None
        self._down_until = 0.0

    def check(self, who: str) -> None:
        now = time.time()
        if now < self._down_until:
            return
        window = int(now // 60)
        key = self.keys.k("rl", who, window)
        with self._lock:
            estimate = self._known.get(key, 0) + self._pending.get(key, 0)
            if estimate + 1 <= self.per_minute - self.margin:
                self._pending[key] = self._pending.get(key, 0) + 1
                self._start_flusher()
                return
            add = 1 + self._pending.pop(key, 0)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(key, add)
            pipe.expire(key, 61)
            count, _ = pipe.execute()
        except redis_lib.RedisError as exc:
            self._redis_down(exc)
            return
        with self._lock:
            self._known[key] = max(self._known.get(key, 0), count)
        if count > self.per_minute:
            retry = max(1, int((window + 1) * 60 - now) + 1)
            raise RateLimited(f"more than {self.per_minute} requests a minute; retry in {retry}s",
                              details={"limit": self.per_minute, "retry_after": retry},
                              headers={"Retry-After": str(retry)})

    def _redis_down(self, exc: Exception) -> None:
        log.warning("rate limiter skipped, redis unavailable: %s", exc)
        self._down_until = time.time() + 5

    def _start_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_forever, name="ratelimit-flush", daemon=True)
            self._flusher.start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_interval)
            self.flush()

    def flush(self) -> None:
        """Send the batched counts; learn the totals other processes contributed."""
        with self._lock:
            pending, self._pending = self._pending, {}
            current = int(time.time() // 60)
            self._known = {k: v for k, v in self._known.items() if k.rsplit(":", 1)[1] == str(current)}
        if not pending:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key, count in pending.items():
                pipe.incrby(key, count)
                pipe.expire(key, 61)
            results = pipe.execute()
        except redis_lib.RedisError as exc:
            self._redis_down(exc)
            return
        with self._lock:
            for key, total in zip(pending, results[::2], strict=True):
                self._known[key] = max(self._known.get(key, 0), total)
