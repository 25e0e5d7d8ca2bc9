"""Event log and search figures (CONTRACT §8, §9), each against a baseline measured in the same run.

1. log latency: a committed write with its event (runtime.events.append in the transaction) → a consumer
   process (runtime.events.run_consumer, woken by the change stream) has it; p50 / p99. Baseline: the same write
   seen by a bare change stream on a plain collection (the server's own notification floor).
2. index: 100k file-like documents into the embedded SQLite FTS5 index (SqliteSearchIndex.upsert in batches)
   → docs/s. Baseline: the same rows into a plain SQLite table (no full-text) in the same file system.
3. query: single-word, two-word and prefix queries over those 100k docs, one owner among 100; p50 / p99.
4. findable: an event appended → the indexer process (python -m functions.search.indexer) makes it a hit; p50 / p99.
Goals: log p50 ≤ 50 ms, p99 ≤ 250 ms; ≥ 10k docs/s; query p50 ≤ 10 ms; findable p99 ≤ 2 s.
Usage: python -m bench.bench_events_log [--events N] [--docs N] [--mongo URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench.common import ROOT, bench_env, python
from functions.search import service
from functions.search.index import SearchDoc
from functions.search.query import parse
from functions.search.sqlite import SqliteSearchIndex
from runtime import events
from runtime.clients import Clients
from runtime.mongo import ensure_indexes, transaction
from runtime.settings import load_settings

WORDS = ("holiday crete beach camera report taxes invoice zoe anna paris sunset dog cat birthday wedding "
         "mountain river garden kitchen office scan receipt passport music video album family school").split()

CONSUMER_SCRIPT = r"""
import json, sys, threading, time
from runtime import events
from runtime.clients import Clients
from runtime.settings import load_settings
clients = Clients(load_settings())
stop = threading.Event()
def handle(batch):
    now = time.time()
    for doc in batch:
        print(json.dumps({"s": doc["subject"], "t": now}), flush=True)
print("ready", flush=True)
events.run_consumer(clients.db, "apps", handle, stop, idle_seconds=5.0)
"""

STREAM_SCRIPT = r"""
import json, sys, time
from runtime.clients import Clients
from runtime.settings import load_settings
clients = Clients(load_settings())
with clients.db.plain.watch([{"$match": {"operationType": "insert"}}]) as stream:
    print("ready", flush=True)
    for change in stream:
        print(json.dumps({"s": change["fullDocument"]["_id"], "t": time.time()}), flush=True)
"""


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def _reader(proc, seen):
    for line in proc.stdout:
        item = json.loads(line)
        seen[item["s"]] = item["t"]


def _latencies(env, script, write, count):
    proc = subprocess.Popen([python(), "-c", script], env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen: dict[str, float] = {}
        threading.Thread(target=_reader, args=(proc, seen), daemon=True).start()
        time.sleep(0.5)
        committed = {}
        for i in range(count):
            subject = f"e{i}-{random.random()}"
            write(subject)
            committed[subject] = time.time()
            time.sleep(0.02)
        deadline = time.monotonic() + 30
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return [max(0.0, seen[s] - t) for s, t in committed.items() if s in seen], count - len(seen)
    finally:
        proc.terminate()
        proc.wait(10)


def bench_log(clients, env, count):
    db = clients.db

    def with_event(subject):
        def work(session):
            db.things.insert_one({"_id": subject}, session=session)
            events.append(db, owner="bench-user", type="graph.node.created", subject=subject, data={"n": 1},
                          session=session)
        transaction(clients.mongo, work)

    def plain(subject):
        transaction(clients.mongo, lambda s: db.plain.insert_one({"_id": subject}, session=s))

    base, base_lost = _latencies(env, STREAM_SCRIPT, plain, count)
    log, lost = _latencies(env, CONSUMER_SCRIPT, with_event, count)
    ratio = statistics.median(log) / max(statistics.median(base), 1e-6)
    print(f"log: write+event → consumer p50 {ms(statistics.median(log))}, p99 {ms(pct(log, 99))} "
          f"({len(log)} events, {lost} not seen); baseline bare change stream p50 {ms(statistics.median(base))}, "
          f"p99 {ms(pct(base, 99))} ({base_lost} not seen); ratio p50 {ratio:.1f}× (goal p50 ≤ 50 ms, p99 ≤ 250 ms)")


def make_docs(total, owners=100):
    rnd = random.Random(7)
    docs = []
    for i in range(total):
        words = rnd.sample(WORDS, 3)
        name = f"{words[0]} {words[1]} {i}.jpg"
        docs.append(SearchDoc(f"owner{i % owners}", f"doc{i}", "files.node", i + 1,
                              {"name": name, "path": f"/{words[2].title()}/{name}"}, {"id": f"doc{i}", "name": name}))
    return docs


def bench_index(total):
    tmp = tempfile.mkdtemp(prefix="pcloud-bench-search-")
    try:
        docs = make_docs(total)
        plain = sqlite3.connect(os.path.join(tmp, "plain.sqlite3"), isolation_level=None)
        plain.execute("PRAGMA journal_mode=WAL")
        plain.execute("CREATE TABLE docs (owner TEXT, id TEXT, type TEXT, seq INTEGER, fields TEXT, node TEXT, "
                      "UNIQUE (owner, id))")
        start = time.perf_counter()
        for at in range(0, total, 2000):
            plain.execute("BEGIN")
            plain.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
                              [(d.owner, d.id, d.type, d.seq, json.dumps(d.fields), json.dumps(d.node))
                               for d in docs[at:at + 2000]])
            plain.execute("COMMIT")
        base = total / (time.perf_counter() - start)
        plain.close()
        index = SqliteSearchIndex(os.path.join(tmp, "search", "index.sqlite3"))
        start = time.perf_counter()
        for at in range(0, total, 2000):
            index.upsert(docs[at:at + 2000])
        rate = total / (time.perf_counter() - start)
        print(f"index: {total} docs into SQLite FTS5 {rate:,.0f} docs/s; baseline plain SQLite table "
              f"{base:,.0f} rows/s; ratio {rate / base:.2f}× (goal ≥ 10,000 docs/s)")
        rnd = random.Random(3)
        queries = ([rnd.choice(WORDS) for _ in range(300)] + [" ".join(rnd.sample(WORDS, 2)) for _ in range(300)]
                   + [rnd.choice(WORDS)[:3] + "*" for _ in range(300)])
        timings = []
        for q in queries:
            owner = f"owner{rnd.randrange(100)}"
            t0 = time.perf_counter()
            service.search(index, owner, q, None, 20, None)
            timings.append(time.perf_counter() - t0)
        parsed = time.perf_counter()
        for q in queries:
            parse(q)
        parse_each = (time.perf_counter() - parsed) / len(queries)
        print(f"query: {len(queries)} queries (word, two words, prefix) over {total} docs, 100 owners: "
              f"p50 {ms(statistics.median(timings))}, p99 {ms(pct(timings, 99))} (goal p50 ≤ 10 ms; "
              f"parsing alone {parse_each * 1e6:.0f} µs)")
        index.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_findable(clients, env, count):
    settings = load_settings(env)
    index = service.index_for(settings)
    proc = subprocess.Popen([python(), "-m", "functions.search.indexer"], env={**os.environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        latencies, lost = [], 0
        for i in range(count):
            word = f"findme{i}x{random.randrange(10**6)}"
            t0 = time.time()
            events.append(clients.db, owner="bench-user", type="files.node.created", subject=f"f{i}",
                          data={"node": {"id": f"f{i}", "name": f"{word}.txt"}, "path": f"/{word}.txt"})
            deadline = t0 + 10
            while time.time() < deadline:
                if service.search(index, "bench-user", word, None, 1, None)[0]:
                    latencies.append(time.time() - t0)
                    break
                time.sleep(0.002)
            else:
                lost += 1
        print(f"findable: append → hit via the indexer process p50 {ms(statistics.median(latencies))}, "
              f"p99 {ms(pct(latencies, 99))} ({len(latencies)} events, {lost} not found in 10 s; goal p99 ≤ 2 s)")
    finally:
        proc.terminate()
        proc.wait(10)
        service.forget_index(settings)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--mongo", help="another MongoDB-wire server, e.g. mongodb://127.0.0.1:27018/")
    args = parser.parse_args()
    env = bench_env()
    if args.mongo:
        env["PCLOUD_MONGO_URL"] = args.mongo.rstrip("/") + "/" + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
    clients = Clients(load_settings(env))
    try:
        ensure_indexes(clients.db)
        bench_log(clients, env, args.events)
        bench_index(args.docs)
        bench_findable(clients, env, min(args.events, 100))
    finally:
        clients.mongo.drop_database(clients.db.name)
        clients.close()
        shutil.rmtree(env["PCLOUD_DATA_DIR"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
