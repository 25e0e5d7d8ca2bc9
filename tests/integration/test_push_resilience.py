"""At least once, whatever dies: a worker SIGKILLed mid-batch, Redis restarted empty, 10,000 messages queued.

MongoDB (outbox + push_deliveries) is the record; Redis only carries work that the sweeper can recreate.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from pymongo.errors import PyMongoError

from push import registry, tasks
from push.relay import Relay, relay_once
from push.senders import FCMSender
from runtime import events, jobs
from runtime.clients import Clients
from runtime.ids import utcnow


def wait_until(predicate, timeout: float, step: float = 0.1, tick=None) -> bool:
    """Poll; a MongoDB that is slow to answer under a loaded CI is a reason to ask again, not to fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if tick:
                tick()
            if predicate():
                return True
        except PyMongoError:
            pass
        time.sleep(step)
    return predicate()


def phones(clients, user_id: str, count: int) -> list[str]:
    tokens = [f"tok-{user_id}-{i:05d}" for i in range(count)]
    for token in tokens:
        registry.register_phone(clients.db, user_id, "phone", "android", token)
    return tokens


def all_sent(clients) -> bool:
    """Nothing queued or failed (two index lookups: polled often, it must not scan 10,000 records)."""
    deliveries = clients.db.push_deliveries
    return deliveries.find_one({"status": "queued"}, {"_id": 1}) is None and \
        deliveries.find_one({"status": "failed"}, {"_id": 1}) is None


def test_worker_killed_mid_batch_still_delivers_everything(clients, fcm_fake, push_worker_process):
    clients.ensure_indexes()
    tokens = phones(clients, "u-kill", 120)
    events.emit(clients.db, "conflict.created", "u-kill", {"conflict_id": "c1", "node_id": "n1"})
    lease = timedelta(seconds=2)
    fcm_fake.delay = 1.0  # FCM answers slowly: the batch is in flight when the worker dies
    assert relay_once(clients, lease) == 1

    worker = push_worker_process()
    assert fcm_fake.wait_for(lambda f: f.stats()["requests"] > 0, timeout=30)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert clients.db.push_deliveries.count_documents({"status": "queued"}) > 0  # the batch was not finished

    fcm_fake.delay = 0.0
    push_worker_process()
    relay = Relay(clients, lease=lease, sweep_every=0.2)
    assert wait_until(lambda: all_sent(clients), timeout=60, tick=relay.maintain)
    received = {m.token for m in fcm_fake.messages}
    assert received == set(tokens)  # every message at least once (some twice: FCM had them when we died)


class PrivateRedis:
    """A Redis of our own that a test may kill and restart with its data lost (no persistence)."""

    def __init__(self, binary: str, data_dir):
        self.binary, self.data_dir = binary, data_dir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.data_dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not installed")
    server = PrivateRedis(binary, tmp_path)
    server.start()
    yield server
    server.kill()


def test_redis_restarted_with_its_data_lost_still_delivers(settings, clients, fcm_settings, fcm_fake, private_redis):
    own = Clients(settings.with_overrides(redis_url=private_redis.url))
    try:
        own.ensure_indexes()
        lease = timedelta(seconds=30)
        ctx = tasks.PushContext(own, FCMSender.from_settings(fcm_settings), lease=lease)
        tasks.configure(ctx)
        tokens = phones(own, "u-redis", 20)
        for i in range(10):
            events.emit(own.db, "conflict.created", "u-redis", {"conflict_id": f"c{i}", "node_id": "n"})
        assert relay_once(own, lease) == 10
        assert own.queue(tasks.QUEUE).count == 1  # 200 messages wait in Redis...

        private_redis.kill()
        private_redis.start()  # ...and Redis comes back empty
        own.redis.connection_pool.disconnect()
        assert own.queue(tasks.QUEUE).count == 0

        jobs.worker([own.queue(tasks.QUEUE)], own.redis).work(burst=True, with_scheduler=False)
        tasks.flush()
        assert fcm_fake.stats()["sent"] == 0
        # the sweeper finds what MongoDB says is owed once the lost jobs' lease is over
        assert tasks.sweep(own, lease, now=utcnow() + lease + timedelta(seconds=1)) == 200
        jobs.worker([own.queue(tasks.QUEUE)], own.redis).work(burst=True, with_scheduler=False)
        tasks.flush()
        assert all_sent(own)
        got = {(m.token, m.message["data"]["conflict_id"]) for m in fcm_fake.messages}
        assert got == {(t, f"c{i}") for t in tokens for i in range(10)}
    finally:
        tasks.configure(None)
        own.mongo.drop_database(own.db.name)
        own.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_ten_thousand_queued_messages_drain_without_loss(clients, fcm_fake, push_worker_process):
    clients.ensure_indexes()
    tokens = phones(clients, "u-many", 100)
    now = utcnow()  # the outbox rows events.emit would write, in one command (kind to a loaded CI's MongoDB)
    clients.db.outbox.insert_many([
        {"_id": f"ev{i:03d}", "type": "conflict.created", "user_id": "u-many", "status": "pending", "attempts": 0,
         "payload": {"conflict_id": f"c{i:03d}", "node_id": "n"}, "created_at": now} for i in range(100)])
    # a lease long enough not to resend what a busy worker still holds, short enough to recover a write
    # that timed out on a loaded machine
    relay = Relay(clients, lease=timedelta(seconds=45), sweep_every=3.0)
    while relay_once(clients, relay.lease):
        pass
    assert clients.db.push_deliveries.count_documents({}) == 10_000

    push_worker_process()
    drained = wait_until(lambda: all_sent(clients), timeout=360, step=1.0, tick=relay.maintain)
    states = {s: clients.db.push_deliveries.count_documents({"status": s}) for s in ("queued", "sent", "failed")}
    assert drained, f"deliveries {states}, stand-in {fcm_fake.stats()}"
    got = {(m.token, m.message["data"]["conflict_id"]) for m in fcm_fake.messages}
    assert len(got) == 10_000
    assert got == {(t, f"c{i:03d}") for t in tokens for i in range(100)}


def test_the_relay_and_worker_processes_deliver_and_stop_cleanly(clients, fcm_fake, fcm_env, push_worker_process):
    """What `make run` starts: `python -m push.relay` and `python -m runtime.worker`."""
    import os
    import sys
    from pathlib import Path

    registry.register_phone(clients.db, "u-proc", "phone", "ios", "tok-proc")
    relay_proc = subprocess.Popen([sys.executable, "-m", "push.relay"], cwd=Path(__file__).resolve().parents[2],
                                  env={**os.environ, **fcm_env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        push_worker_process()
        events.emit(clients.db, "device.online", "u-proc", {"device_id": "nas", "online": True})
        assert fcm_fake.wait_for(lambda f: f.messages_for("tok-proc"), timeout=60)
        assert fcm_fake.messages_for("tok-proc")[0]["data"] == {"type": "device", "device_id": "nas", "online": "true"}
        assert wait_until(lambda: all_sent(clients), timeout=30)
    finally:
        relay_proc.send_signal(signal.SIGTERM)
        _, err = relay_proc.communicate(timeout=30)
    assert relay_proc.returncode == 0, err.decode()[-2000:]
