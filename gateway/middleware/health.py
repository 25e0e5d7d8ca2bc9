"""Readiness: every dependency checked concurrently with a deadline, so /readyz never hangs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from runtime import mongo
from runtime import redis as redis_client

_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")


def readiness(clients, deadline: float = 4.0) -> dict[str, str]:
    checks = {
        "mongo": lambda: mongo.ping(clients.mongo),
        "redis": lambda: redis_client.ping(clients.redis),
        "amqp": lambda: clients.amqp.ping(),
        "store": lambda: clients.store.check(),
    }
    futures = {name: _pool.submit(fn) for name, fn in checks.items()}
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=deadline)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = f"timeout after {deadline:.0f}s"
        except Exception as exc:  # noqa: BLE001 - each check reports why it failed; readiness never raises
            results[name] = getattr(exc, "message", None) or f"{exc.__class__.__name__}: {exc}"
    return results
