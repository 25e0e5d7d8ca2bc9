"""At most N long-polls in flight per user (CONTRACT §4 `?wait=`), counted in Redis across every gateway
process, so one user cannot hold the worker pool: beyond the cap the poll is 429 at once."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from urllib.parse import parse_qs

import redis as redis_lib

from runtime.errors import RateLimited

log = logging.getLogger(__name__)
SAFETY_TTL = 120  # a process that dies holding slots frees them after this (a poll lasts ≤ 25 s)


def is_long_poll(environ, params: tuple[str, ...]) -> bool:
    """A GET that names one of `params` with a positive value (`?wait=10`)."""
    if not params or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return False
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=False)
    for name in params:
        for value in query.get(name, []):
            try:
                if float(value) > 0:
                    return True
            except ValueError:
                continue  # the function answers the bad value with its own 400
    return False


class LongPollLimiter:
    """If Redis is away, polls pass (logged): availability first, like the rate limiter."""

    def __init__(self, redis, keys, per_user: int):
        self.redis, self.keys, self.per_user = redis, keys, per_user

    @contextmanager
    def slot(self, user_id: str):
        key = self.keys.k("lp", user_id)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, SAFETY_TTL)
            count, _ = pipe.execute()
        except redis_lib.RedisError as exc:
            log.warning("long-poll cap skipped, redis unavailable: %s", exc)
            yield
            return
        try:
            if count > self.per_user:
                raise RateLimited(f"at most {self.per_user} long-polls at once per user; retry in a moment",
                                  code="too_many_long_polls", details={"limit": self.per_user},
                                  headers={"Retry-After": "1"})
            yield
        finally:
            try:
                self.redis.decr(key)
            except redis_lib.RedisError as exc:
                log.warning("could not release a long-poll slot: %s", exc)
