"""Server-Sent Events (issue 17): N open streams on the `stream` process, event → client latency, memory per stream.

The `stream` process (gunicorn's asyncio worker, gateway/stream_server.py) is started as `make run` starts it; N
users each open one stream with a bearer token (reached directly, as an ingress routes /events/v1/stream). Then,
one at a time, an event is appended to the log for a random user and the time until that user's client reads the
frame is taken twice: from before the append (what the writer waits for, its transaction included) and from its
commit (what the stream adds).

Baseline, same run: a pymongo change stream on the same collection in this process — the database's own
notification latency, the bound every stream rides on. Memory per stream: the process's RSS before and after the
N streams are open, divided by N. Timings are printed, never judged.
Usage: python -m bench.bench_sse [--streams N] [--samples K]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time

from bench.common import bench_env, free_port, gunicorn, new_bench_user, start_process
from runtime import events
from runtime.clients import Clients
from runtime.identity import USER_SCOPES
from runtime.settings import load_settings
from runtime.tokens import issue_access_token
from tests.sse import SSEClient


class TimedSSE(SSEClient):
    """An SSE client that notes when each data frame was read off the socket (in its reader thread)."""

    def __init__(self, *args, **kwargs):
        self.arrivals: list[float] = []
        self.arrived = threading.Event()
        super().__init__(*args, **kwargs)

    def _frame(self, block: str) -> None:
        if "\ndata:" in f"\n{block}":
            self.arrivals.append(time.perf_counter())
            self.arrived.set()
        super()._frame(block)


def rss_kib(pid: int) -> int:
    """The RSS of a process and its children (gunicorn's master and its worker)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt(values_ms: list[float]) -> str:
    return f"p50 {statistics.median(values_ms):7.1f} ms   p99 {pct(values_ms, 0.99):7.1f} ms"


def baseline_change_stream(clients: Clients, owner: str, samples: int) -> list[float]:
    """Append → this process's own change stream sees the insert, in ms from the commit."""
    out = []
    with clients.db.events.watch([{"$match": {"operationType": "insert"}}]) as watch:
        for i in range(samples):
            events.append(clients.db, owner=owner, type="bench.sse.baseline", subject=f"b{i}", data={})
            committed = time.perf_counter()
            while watch.try_next() is None:
                pass
            out.append((time.perf_counter() - committed) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    env = bench_env(PCLOUD_STREAM_BIND=f"127.0.0.1:{port}", PCLOUD_STREAMS_PER_USER="4",
                    PCLOUD_STREAM_HEARTBEAT_SECONDS="15")
    settings = load_settings(env)
    clients = Clients(settings)
    url = f"http://127.0.0.1:{port}"
    proc = start_process([gunicorn(), "-c", "gateway/gunicorn_stream.conf.py", "gateway.stream_server:app"], env,
                         ready_url=f"{url}/healthz")
    streams: list[TimedSSE] = []
    try:
        users = []
        for _ in range(args.streams):
            user_id = new_bench_user(clients.db)
            token, _ = issue_access_token(clients.keys, settings, sub=user_id, aud="pcloud", scopes=USER_SCOPES)
            users.append((user_id, token))
        baseline = baseline_change_stream(clients, users[0][0], args.samples)
        time.sleep(1.0)
        idle_kib = rss_kib(proc.pid)
        opened = time.perf_counter()
        for _, token in users:
            stream = TimedSSE(f"{url}/events/v1/stream", headers={"Authorization": f"Bearer {token}"},
                              timeout=120)
            if stream.status != 200:
                raise SystemExit(f"stream {len(streams)} refused: {stream.status} {stream.error}")
            streams.append(stream)
        open_s = time.perf_counter() - opened
        time.sleep(2.0)
        open_kib = rss_kib(proc.pid)

        from_start, from_commit, lost = [], [], 0
        rng = random.Random(17)
        for i in range(args.samples):
            k = rng.randrange(len(users))
            stream, (owner, _) = streams[k], users[k]
            stream.arrived.clear()
            seen = len(stream.arrivals)
            started = time.perf_counter()
            events.append(clients.db, owner=owner, type="bench.sse.event", subject=f"e{i}", data={"i": i})
            committed = time.perf_counter()
            if not stream.arrived.wait(10) or len(stream.arrivals) <= seen:
                lost += 1
                continue
            at = stream.arrivals[seen]
            from_start.append((at - started) * 1000)
            from_commit.append((at - committed) * 1000)
        alive = sum(1 for s in streams if not s.closed.is_set())
    finally:
        for stream in streams:
            stream.close()
        proc.terminate()
        proc.wait(timeout=30)
        clients.mongo.drop_database(clients.db.name)

    print(f"load average {os.getloadavg()[0]:.2f}; {args.streams} streams opened in {open_s:.1f} s, "
          f"{alive} still open at the end; {args.samples} events, {lost} not received within 10 s")
    print(f"baseline  change stream in this process (from commit)  {fmt(baseline)}")
    print(f"stream    event → client, from before the append      {fmt(from_start)}")
    print(f"stream    event → client, from the commit             {fmt(from_commit)}")
    ratio = statistics.median(from_commit) / max(statistics.median(baseline), 1e-6)
    print(f"ratio     stream p50 / change-stream p50 (from commit) {ratio:.2f}×   goal: event → browser p50 ≤ 100 ms")
    per_stream = (open_kib - idle_kib) / max(len(streams), 1)
    print(f"memory    stream process RSS idle {idle_kib / 1024:.1f} MiB, with {len(streams)} streams "
          f"{open_kib / 1024:.1f} MiB: {per_stream:.1f} KiB per stream")


if __name__ == "__main__":
    main()
