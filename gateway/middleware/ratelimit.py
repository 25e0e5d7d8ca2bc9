"""Per-user (or per-IP when anonymous) fixed-window rate limit kept in Redis."""

from __future__ import annotations

import logging
import time

import redis as redis_lib

from runtime.errors import RateLimited

log = logging.getLogger(__name__)


class RateLimiter:
    """One Redis round trip per request. If Redis is away, requests pass (logged): availability first."""

    def __init__(self, redis, keys, per_minute: int):
        self.redis = redis
        self.keys = keys
        self.per_minute = per_minute
        self._down_until = 0.0

    def check(self, who: str) -> None:
        now = time.time()
        if now < self._down_until:
            return
        window = int(now // 60)
        key = self.keys.k("rl", who, window)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = pipe.execute()
        except redis_lib.RedisError as exc:
            log.warning("rate limiter skipped, redis unavailable: %s", exc)
            self._down_until = now + 5
            return
        if count > self.per_minute:
            retry = max(1, int((window + 1) * 60 - now) + 1)
            raise RateLimited(f"more than {self.per_minute} requests a minute; retry in {retry}s",
                              details={"limit": self.per_minute, "retry_after": retry},
                              headers={"Retry-After": str(retry)})
