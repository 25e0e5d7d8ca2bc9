"""The rate limiter against the real Redis: exact near the limit, batched far from it."""

import uuid

import pytest

from gateway.middleware.ratelimit import RateLimiter
from runtime.errors import RateLimited
from runtime.redis import RedisKeys, connect


@pytest.fixture
def redis_client():
    client = connect("redis://127.0.0.1:6379/0")
    yield client
    client.close()


def test_small_limits_are_exact_across_processes(redis_client):
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    a, b = RateLimiter(redis_client, keys, 5), RateLimiter(redis_client, keys, 5)
    outcomes = []
    for i in range(8):
        limiter = a if i % 2 else b
        try:
            limiter.check("u:1")
            outcomes.append("ok")
        except RateLimited as exc:
            outcomes.append(int(exc.headers["Retry-After"]))
    assert outcomes[:5] == ["ok"] * 5
    assert all(isinstance(o, int) and 1 <= o <= 61 for o in outcomes[5:])


def test_batched_counts_reach_redis_and_the_limit_still_holds(redis_client):
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    limiter = RateLimiter(redis_client, keys, 300, flush_interval=3600)
    for _ in range(200):
        limiter.check("u:2")
    limiter.flush()
    stored = [int(redis_client.get(k)) for k in redis_client.scan_iter(f"{keys.prefix}rl:u:2:*")]
    assert stored == [200]
    allowed = 0
    with pytest.raises(RateLimited):
        for _ in range(200):
            limiter.check("u:2")
            allowed += 1
    assert allowed == 100


def test_users_do_not_share_a_budget(redis_client):
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    limiter = RateLimiter(redis_client, keys, 2)
    limiter.check("u:a")
    limiter.check("u:a")
    with pytest.raises(RateLimited):
        limiter.check("u:a")
    limiter.check("u:b")
