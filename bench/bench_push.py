"""Push throughput and latency against the local FCM stand-in answering every send in 20 ms.

1. sender: FCMSender.send_batch (real firebase-admin, no queue) → messages/s.
2. worker: one rq SimpleWorker draining N queued deliveries (send + delivery records in MongoDB) → messages/s.
3. latency: outbox event → FCM request, with the relay loop and a worker process running; p50 / p99.
The stand-in runs as its own process for 1-2 so it does not share the worker's interpreter.
Usage: python -m bench.bench_push [--messages N] [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from bench.common import ROOT, bench_env, python
from push import registry, tasks
from push.relay import Relay
from push.senders import FCMSender, PushMessage, firebase_app
from push.service import fan_out
from runtime import events, jobs
from runtime.clients import Clients
from runtime.settings import load_settings
from tests.fakes.fcm import FakeFCM

DELAY_MS = 20


def start_fake_process(service_account: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([python(), "-m", "tests.fakes.fcm", "--delay-ms", str(DELAY_MS), "--no-record",
                             "--service-account", str(service_account)], cwd=ROOT, stdout=subprocess.PIPE)
    info = json.loads(proc.stdout.readline())
    return proc, info["url"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_sender(url: str, service_account: Path, total: int, fake_pid: int) -> dict:
    """send_each (what FCMSender uses) and send_each_async (HTTP/2-capable httpx; over the stand-in's plain
    HTTP/1.1, as httpx speaks h2 only after TLS ALPN) on the same stand-in, with the CPU each side spends."""
    import asyncio

    from firebase_admin import _http_client, messaging
    from firebase_admin._retry import HttpxRetry

    from push.senders import to_fcm_message

    app = firebase_app(str(service_account), url, None, 10.0)
    sender = FCMSender(app)
    msgs = [PushMessage(f"m{i}", f"tok{i}", "sync", {"type": "sync", "cursor": str(i)}, collapse_key="sync")
            for i in range(500)]
    sender.send_batch(msgs[:20])  # warm: token, connections
    service = messaging._get_messaging_service(app)  # noqa: SLF001 - measured here only, not used by PCloud
    # its async client retries 500/503 and sleeps Retry-After inside the call; measure it without retries
    service._async_client = _http_client.HttpxAsyncClient(credential=service._credential, timeout=10,  # noqa: SLF001
                                                          retry_config=HttpxRetry(max_retries=0))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    fcm_msgs = [to_fcm_message(m) for m in msgs]

    def send_async() -> int:
        future = asyncio.run_coroutine_threadsafe(messaging.send_each_async(fcm_msgs[:100], app=app), loop)
        return future.result().success_count

    send_async()
    out = {}
    for name, fn, goal in (("sync", lambda: sum(r.status == "sent" for r in sender.send_batch(msgs)), total),
                           ("async", send_async, max(300, total // 10))):
        fake_cpu, own_cpu, start, sent = _cpu_seconds(fake_pid), time.process_time(), time.perf_counter(), 0
        while sent < goal:
            sent += fn()
        elapsed = time.perf_counter() - start
        out[name] = {"rate": sent / elapsed, "client_ms": (time.process_time() - own_cpu) / sent * 1000,
                     "fake_ms": (_cpu_seconds(fake_pid) - fake_cpu) / sent * 1000}
    loop.call_soon_threadsafe(loop.stop)
    return out


def bench_worker(env: dict, total: int) -> tuple[float, float]:
    settings = load_settings(env)
    clients = Clients(settings)
    clients.ensure_indexes()
    tasks.configure(tasks.PushContext(clients, FCMSender.from_settings(settings)))
    phones = 100
    for i in range(phones):
        registry.register_phone(clients.db, "bench-user", f"p{i}", "android", f"bench-token-{i}")
    evts = [{"_id": f"e{i}", "type": "conflict.created", "user_id": "bench-user",
             "payload": {"conflict_id": f"c{i}", "node_id": "n"}} for i in range(total // phones)]
    start = time.perf_counter()
    docs = []
    for i in range(0, len(evts), 20):
        docs += fan_out(clients.db, clients.redis, clients.redis_keys, evts[i:i + 20], timedelta(minutes=10))
    fan_rate = len(docs) / (time.perf_counter() - start)
    tasks.enqueue(clients, docs)
    start = time.perf_counter()
    jobs.worker([clients.queue(tasks.QUEUE)], clients.redis).work(burst=True, with_scheduler=False,
                                                                              logging_level="WARNING")
    tasks.flush()
    elapsed = time.perf_counter() - start
    sent = clients.db.push_deliveries.count_documents({"status": "sent"})
    tasks.configure(None)
    clients.mongo.drop_database(clients.db.name)
    clients.close()
    return sent / elapsed, fan_rate


def bench_latency(env: dict, count: int) -> list[float]:
    fake = FakeFCM(delay=DELAY_MS / 1000).start()
    sa = fake.make_service_account(Path(env["PCLOUD_DATA_DIR"]) / "latency-sa.json")
    env = {**env, "PCLOUD_PUSH_BACKEND": "fcm", "PCLOUD_FCM_CREDENTIALS": str(sa), "PCLOUD_FCM_ENDPOINT": fake.url,
           "PCLOUD_FCM_TOKEN_URI": fake.token_uri}
    clients = Clients(load_settings(env))
    clients.ensure_indexes()
    registry.register_phone(clients.db, "lat-user", "p", "android", "lat-token")
    # own process group: rq forks a scheduler child that must stop with the worker
    worker = subprocess.Popen([python(), "-m", "runtime.worker", "push"], cwd=ROOT, env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    relay = Relay(clients)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        # warm the worker (imports, OAuth token) before measuring
        events.emit(clients.db, "device.online", "lat-user", {"device_id": "warm", "online": True})
        if not fake.wait_for(lambda f: f.sent_count >= 1, timeout=60):
            raise SystemExit("the worker did not send the warm-up push")
        emitted = {}
        for i in range(count):
            emitted[f"c{i}"] = time.time()
            events.emit(clients.db, "conflict.created", "lat-user", {"conflict_id": f"c{i}", "node_id": "n"})
            time.sleep(0.05)
        fake.wait_for(lambda f: f.sent_count >= count + 1, timeout=60)
        # latency to the moment the stand-in got the request (its recorded time minus its 20 ms answer delay)
        return [(m.at - DELAY_MS / 1000 - emitted[m.message["data"]["conflict_id"]]) * 1000
                for m in fake.messages if m.message["data"].get("conflict_id") in emitted]
    finally:
        relay.stop()
        thread.join(timeout=5)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        fake.stop()
        clients.mongo.drop_database(clients.db.name)
        clients.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--mongo", help="another MongoDB-wire server, e.g. mongodb://127.0.0.1:27018/")
    args, _ = parser.parse_known_args(argv)

    def env_for(**extra) -> dict:
        env = bench_env(**extra)
        if args.mongo:
            env["PCLOUD_MONGO_URL"] = args.mongo.rstrip("/") + "/" + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
        return env

    tmp = Path(tempfile.mkdtemp(prefix="pcloud-bench-push-"))
    service_account = tmp / "sa.json"
    fake, url = start_fake_process(service_account)
    try:
        senders = bench_sender(url, service_account, args.messages, fake.pid)
        env = env_for(PCLOUD_PUSH_BACKEND="fcm", PCLOUD_FCM_CREDENTIALS=str(service_account),
                      PCLOUD_FCM_ENDPOINT=url)
        worker_rate, fan_rate = bench_worker(env, args.messages)
    finally:
        fake.kill()
        fake.wait()
    latencies = sorted(bench_latency(env_for(), args.events))
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print("load average (1, 5, 15 min) at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"stand-in answers each send in {DELAY_MS} ms; 2-core machine, stand-in and worker both CPython")
    sync, asyn = senders["sync"], senders["async"]
    print(f"sender only (send_each, 500/batch, keep-alive pool of 64):  {sync['rate']:8.0f} messages/s   "
          f"CPU per message: ours {sync['client_ms']:.2f} ms, stand-in {sync['fake_ms']:.2f} ms (target ≥ 2,000/s)")
    print(f"  baseline send_each_async (httpx, 100 per gather):           {asyn['rate']:8.0f} messages/s   "
          f"CPU per message: ours {asyn['client_ms']:.2f} ms, stand-in {asyn['fake_ms']:.2f} ms; "
          f"ratio send_each/async {sync['rate'] / asyn['rate']:.2f}x")
    print(f"  bound: one Python process at {sync['client_ms']:.2f} ms CPU per message sends at most "
          f"{1000 / sync['client_ms']:,.0f}/s on a free core; both sides together need "
          f"{sync['client_ms'] + sync['fake_ms']:.2f} ms per message of this machine's 2 cores "
          f"(≤ {2000 / (sync['client_ms'] + sync['fake_ms']):,.0f}/s)")
    print(f"one worker, queue + delivery records in MongoDB:            {worker_rate:8.0f} messages/s")
    print(f"relay fan-out (deliveries recorded):                        {fan_rate:8.0f} deliveries/s")
    print(f"outbox event -> FCM request ({len(latencies)} events):  p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
