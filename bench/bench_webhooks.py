"""Webhook deliveries/s to a local receiver (issue 17), against baselines measured in the same run.

The receiver is its own process (tests/fakes/webhook_receiver.py, keep-alive HTTP/1.1, verifies every signature
when given the secret) on 127.0.0.1, allowed deliberately (PCLOUD_WEBHOOK_ALLOW_NETS=127.0.0.1/32).

1. baseline, raw: `requests.post` of the same body, one after another (a new connection each) — what a naive
   sender does; and `requests.Session` on 8 threads (keep-alive, concurrent) — the best plain client here.
2. sender: the notifier's SafeHttpSender on 8 threads (resolve + SSRF check + HMAC signature + pooled POST to
   the checked address), no database.
3. deliverer: N delivery records in MongoDB drained by delivering.Deliverer (claim with a lease, sign, POST, record
   the attempt, update the webhook) — what the notifier process does per delivery.
4. end to end: N `devices.device.offline` events appended → the `notify` consumer (handle_events) makes the
   deliveries → the deliverer sends them; events/s from first append to last delivered.
Ratios are against the keep-alive baseline (the fair one) and the raw one.
Usage: python -m bench.bench_webhooks [--n N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.common import bench_env, free_port, python, start_process
from functions.notify import delivering, service, signing
from functions.notify.netguard import AddressPolicy, SafeHttpSender, SystemResolver
from runtime import events
from runtime.clients import Clients
from runtime.ids import new_id, utcnow
from runtime.mongo import database_name
from runtime.settings import load_settings


def stats(url: str) -> dict:
    return requests.get(f"{url}/_stats", timeout=10).json()


def wait_received(url: str, target: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while stats(url)["received"] < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"receiver saw {stats(url)['received']} of {target}")
        time.sleep(0.01)


def body_of(i: int) -> bytes:
    return json.dumps({"id": new_id(), "type": "devices.device.offline", "n": i,
                       "event": {"subject": "nas-1", "data": {"device": {"online": False}}}}).encode()


def raw_sequential(url: str, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        requests.post(url, data=body_of(i), headers={"Content-Type": "application/json"}, timeout=10)
    return n / (time.perf_counter() - started)


def session_threads(url: str, n: int, threads: int) -> float:
    local = threading.local()

    def one(i: int) -> None:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        s.post(url, data=body_of(i), headers={"Content-Type": "application/json"}, timeout=10)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - started)


def sender_threads(url: str, n: int, threads: int, secret: str) -> float:
    sender = SafeHttpSender(AddressPolicy.from_settings(load_settings(bench_env(
        PCLOUD_WEBHOOK_ALLOW_NETS="127.0.0.1/32"))), SystemResolver(), timeout=10, pool_size=threads)

    def one(i: int) -> None:
        raw = body_of(i)
        answer = sender.post(url, raw, {"Content-Type": "application/json",
                                        signing.HEADER: signing.header_value([secret], raw)})
        assert answer.ok, answer.error

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    rate = n / (time.perf_counter() - started)
    sender.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    args, _ = parser.parse_known_args()
    n, threads = args.n, args.threads

    env = bench_env(PCLOUD_WEBHOOK_ALLOW_NETS="127.0.0.1/32", PCLOUD_WEBHOOK_BACKOFF_SECONDS="0.1")
    settings = load_settings(env)
    clients = Clients(settings)
    clients.ensure_indexes()
    secret = signing.new_secret()
    port = free_port()
    receiver_url = f"http://127.0.0.1:{port}"
    proc = start_process([python(), "-m", "tests.fakes.webhook_receiver", "--port", str(port), "--secret", secret],
                         env, ready_url=f"{receiver_url}/_stats")
    try:
        hook_url = f"{receiver_url}/hook"
        print(f"webhook deliveries to a local receiver process, n={n}, {threads} threads")
        raw = raw_sequential(hook_url, min(n, 1000))
        print(f"  baseline requests.post, sequential (new connection each): {raw:8.0f} deliveries/s")
        keep = session_threads(hook_url, n, threads)
        print(f"  baseline requests.Session x{threads} threads (keep-alive):    {keep:8.0f} deliveries/s")
        before = stats(receiver_url)["verified"]
        fast = sender_threads(hook_url, n, threads, secret)
        verified = stats(receiver_url)["verified"] - before
        print(f"  SafeHttpSender x{threads} (check + sign + pooled POST):      {fast:8.0f} deliveries/s  "
              f"ratio {fast / keep:.2f} vs keep-alive, {fast / raw:.2f} vs raw; {verified}/{n} signatures verified")

        owner = new_id()
        now = utcnow()
        hook = {"_id": new_id(), "owner": owner, "url": hook_url, "events": ["devices.device.offline"],
                "description": "bench", "state": "enabled", "secret": secret, "consecutive_failures": 0,
                "created_at": now, "updated_at": now}
        clients.db.webhooks.insert_one(hook)

        # 3. delivery records drained by the deliverer
        docs = [service.deliveries.new_webhook_delivery(owner, hook["_id"], new_id(), "devices.device.offline",
                                                        lambda did, i=i: body_of(i).decode(), now)
                for i in range(n)]
        clients.db.notify_deliveries.insert_many(docs)
        start_count = stats(receiver_url)["received"]
        deliverer = delivering.Deliverer(clients.db, clients.mongo, settings, threads=threads)
        started = time.perf_counter()
        while deliverer.run_once(limit=200):
            pass
        drained = n / (time.perf_counter() - started)
        got = stats(receiver_url)["received"] - start_count
        delivered = clients.db.notify_deliveries.count_documents({"state": "delivered"})
        print(f"  Deliverer (lease, sign, POST, record) from MongoDB:       {drained:8.0f} deliveries/s  "
              f"ratio {drained / keep:.2f} vs keep-alive, {drained / raw:.2f} vs raw; {delivered}/{n} delivered, "
              f"{got} received")

        # 4. end to end: events → consumer → deliverer
        clients.db.notify_deliveries.delete_many({})
        start_count = stats(receiver_url)["received"]
        stop = threading.Event()
        sending = threading.Thread(target=deliverer.run, args=(stop,), kwargs={"idle_seconds": 0.05}, daemon=True)
        sending.start()

        def consume() -> None:
            events.run_consumer(clients.db, "notify",
                                lambda batch: service.handle_events(clients.db, clients.mongo, batch)
                                and deliverer.wake.set(), stop, batch=200, idle_seconds=0.2)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        started = time.perf_counter()
        for i in range(n):
            events.append(clients.db, owner=owner, type="devices.device.offline", subject=f"nas-{i}",
                          data={"device": {"device_id": f"nas-{i}", "online": False}})
        appended = time.perf_counter() - started
        wait_received(receiver_url, start_count + n)
        e2e = n / (time.perf_counter() - started)
        stop.set()
        deliverer.wake.set()
        consumer.join(timeout=10)
        sending.join(timeout=10)
        append_rate = n / appended
        print(f"  end to end: event appended → consumer → delivered:        {e2e:8.0f} events/s  "
              f"ratio {e2e / keep:.2f} vs keep-alive (appending alone: {append_rate:.0f} events/s)")
        final = stats(receiver_url)
        print(f"  receiver: {final['received']} received, {final['failed_verification']} without a verified "
              f"signature (the two baselines send none: {min(n, 1000) + n})")
        deliverer.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        clients.mongo.drop_database(database_name(settings.mongo_url))
        clients.close()


if __name__ == "__main__":
    main()
