"""Push under faults: how many pushes FCM gets twice (or late) when Redis is flushed or the worker is SIGKILLed.

Real worker process (`python -m runtime.worker push`), the relay loop in this process, the FCM stand-in
answering each send after a delay, and a Redis of our own (FLUSHALL must not touch anybody else's keys).
Each scenario sends a burst of pushes (one per phone, many small rq jobs) and then counts, at the stand-in,
every (token, message) received more than once, and how long the last push took after the fault:

  baseline   no fault (the floor: should be 0 duplicates)
  flush-mid  FLUSHALL while the burst's job is in flight
  flush-queued  FLUSHALL while a second burst's job waits in Redis behind the first
  flush-end  FLUSHALL right after the burst was delivered
  kill-mid   SIGKILL of the worker mid-burst, a new worker started 1 s later (what supervisord does)
  resent     after the burst was delivered, FLUSHALL and its job enqueued once more with the same deliveries
             (what a sweeper does when it takes a job for lost: a lease that ran out under a slow batch)

Usage: python -m bench.bench_resilience [--pushes N] [--lease SECONDS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import redis as redis_lib

from bench.common import ROOT, bench_env, python
from push import registry, tasks
from push.relay import Relay
from runtime import events
from runtime.clients import Clients
from runtime.settings import load_settings
from tests.fakes.fcm import FakeFCM

FCM_DELAY = 0.5  # seconds before the stand-in answers: the burst's job is in flight when the fault comes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """A private Redis, the stand-in, one worker process and the relay thread, for one scenario."""

    def __init__(self, tmp: Path, lease: float):
        self.tmp = tmp
        self.redis_port = _free_port()
        self.redis_proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.redis = redis_lib.Redis(port=self.redis_port, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.redis.ping()
                break
            except redis_lib.RedisError:
                if time.monotonic() > deadline:
                    raise SystemExit("private redis-server did not start") from None
                time.sleep(0.05)
        self.fake = FakeFCM(delay=FCM_DELAY).start()
        sa = self.fake.make_service_account(tmp / "sa.json")
        self.env = bench_env(PCLOUD_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0", PCLOUD_PUSH_BACKEND="fcm",
                             PCLOUD_FCM_CREDENTIALS=str(sa), PCLOUD_FCM_ENDPOINT=self.fake.url,
                             PCLOUD_FCM_TOKEN_URI=self.fake.token_uri, PCLOUD_HTTP_TIMEOUT_SECONDS="30")
        self.clients = Clients(load_settings(self.env))
        self.clients.ensure_indexes()
        self.worker = None
        self.relay = Relay(self.clients, lease=timedelta(seconds=lease), sweep_every=0.5)
        self.relay_thread = threading.Thread(target=self.relay.run, name="relay", daemon=True)

    def start(self) -> None:
        self.start_worker()
        self.relay_thread.start()
        registry.register_phone(self.clients.db, "warm", "p", "android", "warm-token")
        events.emit(self.clients.db, "device.online", "warm", {"device_id": "warm", "online": True})
        if not self.fake.wait_for(lambda f: f.sent_count >= 1, timeout=90):
            raise SystemExit("the worker did not send the warm-up push")

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([python(), "-m", "runtime.worker", "push"], cwd=ROOT,
                                       env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)

    def stop(self) -> None:
        self.relay.stop()
        self.relay_thread.join(timeout=10)
        if self.worker is not None and self.worker.poll() is None:
            self.kill_worker()
        self.fake.stop()
        self.redis_proc.kill()
        self.redis_proc.wait(timeout=10)
        self.clients.mongo.drop_database(self.clients.db.name)
        self.clients.close()


def run_scenario(name: str, pushes: int, lease: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"pcloud-bench-res-{name}-"))
    stack = Stack(tmp, lease)
    try:
        stack.start()
        tokens = [f"{name}-tok-{i:03d}" for i in range(pushes)]
        for i, token in enumerate(tokens):
            registry.register_phone(stack.clients.db, f"u{i}", "p", "android", token)
        waves = 2 if name == "flush-queued" else 1
        at_fcm_when_killed = None

        def burst(wave: int) -> None:  # one burst: the relay's next pass makes it one job
            for i in range(pushes):
                events.emit(stack.clients.db, "conflict.created", f"u{i}",
                            {"conflict_id": f"w{wave}-c{i}", "node_id": "n"})

        burst(0)
        fault_at = time.monotonic()
        if name == "resent":
            deadline = time.monotonic() + 60
            while stack.clients.db.push_deliveries.count_documents({"owner": {"$ne": "warm"}}) < pushes:
                if time.monotonic() > deadline:
                    raise SystemExit("the relay did not record the burst")
                time.sleep(0.02)
            recorded = list(stack.clients.db.push_deliveries.find({"owner": {"$ne": "warm"}}))
        if name in ("flush-mid", "flush-queued", "kill-mid"):
            stack.fake.wait_for(lambda f: f.requests_count > 1, timeout=30)
        if name == "flush-queued":  # a second job waits in Redis behind the one in flight
            burst(1)
            waiting = stack.clients.queue("push")
            deadline = time.monotonic() + 30
            while waiting.count == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        if name in ("flush-mid", "flush-queued"):
            stack.redis.flushall()
            fault_at = time.monotonic()
        elif name == "kill-mid":
            stack.kill_worker()
            time.sleep(1.0)  # requests the dead worker had made are answered (and count as sent) meanwhile
            at_fcm_when_killed = len([m for m in stack.fake.messages if m.token in set(tokens)])
            stack.start_worker()
            fault_at = time.monotonic()

        def received() -> Counter:
            return Counter((m.token, m.message["data"].get("conflict_id")) for m in stack.fake.messages
                           if m.token in set(tokens))

        deadline = time.monotonic() + lease * 3 + 60
        while time.monotonic() < deadline and len(received()) < pushes * waves:
            time.sleep(0.05)
        done_after = time.monotonic() - fault_at
        if name == "flush-end":
            stack.redis.flushall()
        elif name == "resent":
            stack.redis.flushall()
            tasks.enqueue(stack.clients, recorded)
        time.sleep(lease + 3)  # whatever the sweeper would send again has been sent by now
        counts = received()
        return {"name": name, "pushes": pushes * waves, "delivered": len(counts),
                "duplicates": sum(c - 1 for c in counts.values()), "seconds": done_after,
                "worker_exited": stack.worker.poll() is not None, "at_fcm_when_killed": at_fcm_when_killed}
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--lease", type=float, default=30.0,
                        help="the relay's job lease (seconds; production: 120)")
    parser.add_argument("--scenario", action="append", help="run only these (default: all)")
    args, _ = parser.parse_known_args(argv)
    names = args.scenario or ["baseline", "flush-mid", "flush-queued", "flush-end", "kill-mid", "resent"]
    print(f"bursts of {args.pushes} pushes, one per phone, stand-in answers in {FCM_DELAY * 1000:.0f} ms, "
          f"relay lease {args.lease:.0f} s")
    for name in names:
        r = run_scenario(name, args.pushes, args.lease)
        last = "last push" if name == "baseline" else "last push after the fault"
        print(f"{r['name']:12s} delivered {r['delivered']:3d}/{r['pushes']}  duplicates {r['duplicates']:3d} "
              f"({100 * r['duplicates'] / r['pushes']:5.1f} %)  {last}: {r['seconds']:5.1f} s"
              + ("  (the worker process exited)" if r["worker_exited"] else "")
              + (f"  (FCM took {r['at_fcm_when_killed']} from the worker that died)"
                 if r["at_fcm_when_killed"] is not None else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
