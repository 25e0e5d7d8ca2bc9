"""After a Redis flush pushes still arrive, at least once, and (almost) never twice: MongoDB knows what was sent.

A Redis of our own (FLUSHALL must not touch the keys of other tests), the FCM stand-in, real rq workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from push import registry, tasks
from push.relay import Relay, relay_once
from push.senders import FCMSender
from runtime import events, jobs
from runtime.clients import Clients
from runtime.ids import utcnow
from tests.fixtures.pairing import wait_until
from tests.integration.test_push_resilience import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_redis(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not installed")
    server = PrivateRedis(binary, tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def own(settings, own_redis):
    """Clients of this test's database on the private Redis."""
    made = Clients(settings.with_overrides(redis_url=own_redis.url))
    made.ensure_indexes()
    yield made
    made.mongo.drop_database(made.db.name)
    made.close()


@pytest.fixture
def own_context(own, fcm_settings):
    ctx = tasks.PushContext(own, FCMSender.from_settings(fcm_settings), lease=timedelta(seconds=120))
    tasks.configure(ctx)
    yield ctx
    tasks.configure(None)


def _burst(clients, count: int, prefix: str) -> set[str]:
    """One sync push for each of `count` users' phones; returns the tokens."""
    tokens = set()
    for i in range(count):
        user = f"{prefix}-{i:02d}"
        registry.register_phone(clients.db, user, "phone", "android", f"tok-{user}")
        tokens.add(f"tok-{user}")
    for i in range(count):
        events.emit(clients.db, "node.changed", f"{prefix}-{i:02d}", {"node_id": f"n{i}", "seq": i + 1})
    return tokens


def _drain(clients) -> None:
    jobs.worker([clients.queue(tasks.QUEUE)], clients.redis).work(burst=True, with_scheduler=False,
                                                                  logging_level="WARNING")
    tasks.flush()


def _received(fake, tokens) -> Counter:
    return Counter(m.token for m in fake.messages if m.token in tokens)


def test_a_job_sent_again_after_a_flush_skips_what_was_already_sent(own, own_context, fcm_fake):
    lease = timedelta(seconds=120)
    tokens = _burst(own, 30, "u-again")
    assert relay_once(own, lease) == 30
    docs = list(own.db.push_deliveries.find({"status": "queued"}))
    _drain(own)
    assert _received(fcm_fake, tokens) == Counter(tokens)

    own.redis.flushall()
    tasks.enqueue(own, docs)  # the same deliveries once more, as a sweeper that believed them lost would
    _drain(own)
    assert _received(fcm_fake, tokens) == Counter(tokens)  # nothing twice
    assert own.db.push_deliveries.count_documents({"status": "sent"}) == 30


def test_deliveries_whose_job_vanished_with_redis_go_again_before_their_lease_ends(own, own_context, fcm_fake):
    lease = timedelta(seconds=120)
    tokens = _burst(own, 30, "u-lost")
    assert relay_once(own, lease) == 30
    own.redis.flushall()  # the job is gone before any worker took it

    assert tasks.sweep(own, lease) == 0  # a moment ago it was handed out: its job may still be on its way
    later = utcnow() + tasks.ORPHAN_GRACE + timedelta(seconds=1)  # ...long before the lease ends
    assert tasks.sweep(own, lease, now=later) == 30
    _drain(own)
    assert _received(fcm_fake, tokens) == Counter(tokens)


def test_a_flush_during_a_burst_delivers_every_push_once(own, settings, fcm_env, fcm_fake, own_redis):
    """The real worker process and the relay loop (with its 120 s lease) while Redis is flushed mid-burst."""
    worker = subprocess.Popen([sys.executable, "-m", "runtime.worker", "push"], cwd=ROOT,
                              env={**os.environ, **fcm_env, "PCLOUD_REDIS_URL": own_redis.url},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    relay = Relay(own, lease=tasks.DEFAULT_LEASE, sweep_every=0.5)
    thread = threading.Thread(target=relay.run, name="relay", daemon=True)
    thread.start()
    try:
        registry.register_phone(own.db, "warm", "phone", "android", "tok-warm")
        events.emit(own.db, "device.online", "warm", {"device_id": "d", "online": True})
        assert fcm_fake.wait_for(lambda f: f.messages_for("tok-warm"), timeout=60)

        fcm_fake.delay = 1.0  # the burst's job is in flight when Redis loses everything
        tokens = _burst(own, 30, "u-flush")
        assert fcm_fake.wait_for(lambda f: f.stats()["requests"] > 1, timeout=60)
        own_redis_client = own.redis
        own_redis_client.flushall()
        flushed_at = time.monotonic()
        fcm_fake.delay = 0.0

        wait_until(lambda: set(_received(fcm_fake, tokens)) == tokens, timeout=40, every=0.2,
                   what="every push after the flush")
        assert time.monotonic() - flushed_at < tasks.DEFAULT_LEASE.total_seconds() / 2  # not held until the lease
        wait_until(lambda: own.db.push_deliveries.count_documents({"status": "queued"}) == 0, timeout=30,
                   what="every delivery settled")
        time.sleep(tasks.ORPHAN_GRACE.total_seconds() + 2)  # a resend the sweeper would make has been made
        counts = _received(fcm_fake, tokens)
        assert sum(counts.values()) - len(counts) == 0, counts  # at least once, and here exactly once
    finally:
        relay.stop()
        thread.join(timeout=10)
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=5)
