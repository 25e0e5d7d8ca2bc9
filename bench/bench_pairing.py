"""Pairing round trips over the real broker: gateway (gunicorn) + listener + one auto-pressing agent process.

Phase 1, latency: sessions one at a time, start → waiting and start → done as a client sees them
(POST, then long-polls). Phase 2, load: 50 devices paired concurrently, 10 sessions each; sessions/s and
the same percentiles under load. The agent presses its button `--press-ms` after answering pair.waiting
(a person takes seconds; the delay keeps waiting and done apart), so start → done includes it.

    .venv/bin/python -m bench.bench_pairing            # 500 sessions each phase
    .venv/bin/python -m bench.bench_pairing --quick    # 50 sessions each phase
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.common import ROOT, bench_env, gunicorn, new_bench_user, python, start_process

DEVICES = 50
GATEWAY_THREADS = 40  # per gunicorn worker (2 workers)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


class Pairer:
    """One user pairing one device, over HTTP keep-alive."""

    def __init__(self, base: str, token: str, serial: str):
        self.base = base
        self.serial = serial
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def pair_once(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        try:
            resp = self.http.post(f"{self.base}/pairing/v1/sessions", json={"serial": self.serial}, timeout=30)
        except requests.ConnectionError:  # a keep-alive connection the server closed while idle; a restart
            resp = self.http.post(f"{self.base}/pairing/v1/sessions", json={"serial": self.serial}, timeout=30)
        resp.raise_for_status()
        sid = resp.json()["session_id"]
        status, t_wait = "start", None
        while status not in ("done", "failed", "expired"):
            got = self.http.get(f"{self.base}/pairing/v1/sessions/{sid}", params={"wait": 25, "since": status},
                                timeout=30).json()
            status = got["status"]
            if t_wait is None and status != "start":
                t_wait = time.perf_counter()
        if status != "done":
            raise RuntimeError(f"session {sid} ended {status}: {got}")
        t_done = time.perf_counter()
        return (t_wait - t0) * 1000, (t_done - t0) * 1000


def _server_side(redis, prefix: str, dump: str | None = None) -> tuple[list[float], list[float]]:
    """From the sessions' own timestamps: session created → listener saw pair.waiting / claimed the device."""
    waits, dones = [], []
    sessions = []
    for key in redis.scan_iter(f"{prefix}pairing:session:*", count=1000):
        s = {k.decode(): v.decode() for k, v in redis.hgetall(key).items()}
        sessions.append(s)
        if s.get("status") == "done" and "waiting_ms" in s:
            waits.append(int(s["waiting_ms"]) - int(s["created_ms"]))
            dones.append(int(s["done_ms"]) - int(s["created_ms"]))
        redis.delete(key)
    if dump:
        with open(dump, "w") as out:
            json.dump(sessions, out)
    return waits, dones


def _report(name: str, samples: list[tuple[float, float]], elapsed: float, server) -> None:
    waits, dones = [s[0] for s in samples], [s[1] for s in samples]
    print(f"{name}: {len(samples)} sessions in {elapsed:.1f}s = {len(samples) / elapsed:.1f} sessions/s")
    print(f"  client  start→waiting  p50 {statistics.median(waits):7.1f} ms   p99 {_pct(waits, 99):7.1f} ms"
          f"   (targets p50 ≤ 20 ms, p99 ≤ 100 ms)")
    print(f"  client  start→done     p50 {statistics.median(dones):7.1f} ms   p99 {_pct(dones, 99):7.1f} ms")
    s_waits, s_dones = server
    if s_waits:
        print(f"  server  start→waiting  p50 {statistics.median(s_waits):7.1f} ms   p99 {_pct(s_waits, 99):7.1f} ms"
              f"   (session created → pair.waiting handled)")
        print(f"  server  start→done     p50 {statistics.median(s_dones):7.1f} ms   p99 {_pct(s_dones, 99):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="50 sessions per phase instead of 500")
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--press-ms", type=int, default=50)
    parser.add_argument("--listener-workers", type=int, default=None, help="default: the listener's own")
    parser.add_argument("--logs", default=None, help="a directory for the processes' output (default: discarded)")
    args, _ = parser.parse_known_args()
    sessions = args.sessions or (50 if args.quick else 500)

    vhost = f"pcloud-bench-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    env = bench_env(PCLOUD_AMQP_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}")

    from runtime.clients import Clients
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    settings = load_settings(env)
    clients = Clients(settings)
    clients.ensure_indexes()
    clients.amqp.ping()  # topology, so the agents can say hello before the listener is up

    def users(n: int) -> list[str]:
        tokens = []
        for _ in range(n):
            uid = new_bench_user(clients.db)
            tokens.append(issue_access_token(clients.keys, settings, sub=uid, aud="pcloud")[0])
        return tokens

    def spawn(name: str, argv: list[str]) -> subprocess.Popen:
        if not args.logs:
            return start_process(argv, env)
        os.makedirs(args.logs, exist_ok=True)
        with open(os.path.join(args.logs, f"{name}.log"), "wb") as out:
            return subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    serials = [f"BENCH-{i:03d}-{uuid.uuid4().hex[:4].upper()}" for i in range(DEVICES)]
    procs = []
    try:
        listener = [python(), "-m", "functions.pairing.listener"]
        if args.listener_workers:
            listener += ["--workers", str(args.listener_workers)]
        procs.append(spawn("listener", listener))
        agent_args = [python(), "-m", "devices.nas_agent", "--state-dir", f"{env['PCLOUD_DATA_DIR']}/nas",
                      "--auto-press", str(args.press_ms / 1000), "--log-level", "INFO" if args.logs else "WARNING"]
        for serial in serials:
            agent_args += ["--serial", serial]
        procs.append(spawn("agents", agent_args))
        # 50 clients each holding a long-poll need more than the default 2 × 16 threads
        procs.append(spawn("gateway", [gunicorn(), "-c", "gateway/gunicorn.conf.py", "--threads", str(GATEWAY_THREADS),
                                       "gateway.wsgi:app"]))
        deadline = time.monotonic() + 60
        while True:  # workers still booting answer slowly: wait for a real 200
            try:
                if requests.get(f"{settings.public_url}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the gateway did not come up within 60 s")
            time.sleep(0.2)
        while clients.db.devices.count_documents({"kind": "nas"}) < DEVICES:
            if time.monotonic() > deadline:
                raise SystemExit("the agents did not all say hello within 60 s")
            time.sleep(0.2)
        base = settings.public_url

        # phase 1: one at a time, round robin over devices; each user starts at most 10 per minute
        per_user = -(-sessions // DEVICES)
        if per_user > 10:
            raise SystemExit("at most 10 sessions per device and phase (the per-user start limit)")
        tokens = users(DEVICES)
        pairers = [Pairer(base, tokens[i], serials[i]) for i in range(DEVICES)]
        for p in pairers[:3]:
            p.pair_once()  # warm up connections and caches
        _server_side(clients.redis, settings.redis_prefix)
        samples = []
        t0 = time.perf_counter()
        for i in range(sessions):
            samples.append(pairers[i % DEVICES].pair_once())
        _report("sequential (1 at a time)", samples, time.perf_counter() - t0,
                _server_side(clients.redis, settings.redis_prefix,
                             os.path.join(args.logs, "sessions-sequential.json") if args.logs else None))

        # between phases: the first users unpair, so new users may pair the same boxes
        for p in pairers:
            for item in p.http.get(f"{base}/devices/v1/devices", timeout=10).json()["items"]:
                p.http.delete(f"{base}/devices/v1/devices/{item['device_id']}", timeout=10).raise_for_status()

        # phase 2: 50 devices at once
        tokens = users(DEVICES)
        pairers = [Pairer(base, tokens[i], serials[i]) for i in range(DEVICES)]
        lock = threading.Lock()
        samples = []

        def run(p: Pairer, n: int) -> None:
            for _ in range(n):
                s = p.pair_once()
                with lock:
                    samples.append(s)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(DEVICES) as pool:
            futures = [pool.submit(run, pairers[i], sessions // DEVICES + (i < sessions % DEVICES))
                       for i in range(DEVICES)]
            for f in futures:
                f.result()
        _report(f"concurrent ({DEVICES} devices)", samples, time.perf_counter() - t0,
                _server_side(clients.redis, settings.redis_prefix,
                             os.path.join(args.logs, "sessions.json") if args.logs else None))
        print(f"(agent presses {args.press_ms} ms after pair.waiting; gunicorn 2 workers × {GATEWAY_THREADS} threads; "
              f"one listener; one agent process for all {DEVICES} devices; 2-core machine)")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        clients.mongo.drop_database(clients.db.name)
        for key in clients.redis.scan_iter(f"{settings.redis_prefix}*", count=1000):
            clients.redis.delete(key)
        clients.close()
        _ctl("delete_vhost", vhost)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
