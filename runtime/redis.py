"""Redis access: one client per process with timeouts, and prefixed keys so tenants/tests never collide."""

from __future__ import annotations

import redis as redis_lib

from runtime.errors import Unavailable


def connect(url: str, timeout: float = 5.0) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    health_check_interval=30)


class RedisKeys:
    """Builds every Redis key from one prefix (PCLOUD_REDIS_PREFIX)."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def k(self, *parts) -> str:
        return self.prefix + ":".join(str(p) for p in parts)


def ping(client: redis_lib.Redis) -> None:
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        raise Unavailable(f"redis: {exc.__class__.__name__}", details={"dependency": "redis"}) from exc
