"""Mobile sync at 1,000 and 100,000 nodes for one user: changes feed, full listing, ops throughput.

The gateway runs in this process on loopback (real HTTP), so a pymongo command listener sees every database
command: each figure is split into database wait (time inside MongoDB commands, i.e. the embedded
MongoDB-wire server, itself Python) and the rest (our code, Flask/werkzeug and the HTTP client).
The 100k tree is seeded directly with insert_many. Figures only; nothing here asserts timings.

    python -m bench.bench_sync [--sizes 1000,100000] [--ops 2000] [--mongo mongodb://127.0.0.1:27018]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import requests
from pymongo import monitoring

from bench.common import bench_env, new_bench_user


class DbClock(monitoring.CommandListener):
    """Sums the duration of every MongoDB command this process sends."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.commands = 0

    def started(self, event):
        pass

    def succeeded(self, event):
        self._add(event.duration_micros)

    def failed(self, event):
        self._add(event.duration_micros)

    def _add(self, micros: int) -> None:
        with self.lock:
            self.seconds += micros / 1e6
            self.commands += 1

    def snapshot(self) -> tuple[float, int]:
        with self.lock:
            return self.seconds, self.commands


CLOCK = DbClock()
monitoring.register(CLOCK)


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Measured:
    def __init__(self):
        self.wall = 0.0
        self.db = 0.0
        self.commands = 0

    def __enter__(self):
        self._t = time.perf_counter()
        self._db, self._n = CLOCK.snapshot()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t
        db, n = CLOCK.snapshot()
        self.db, self.commands = db - self._db, n - self._n
        return False


def seed(db, owner: str, root_id: str, total: int) -> list[str]:
    """`total` nodes (folders of 1,000 files) written straight into `nodes`, seq 2..total+1, in chunks."""
    from functions.files.tree import new_node

    file_ids, seq, chunk = [], 1, []
    folders = max(1, total // 1000)
    per_folder = (total - folders) // folders
    for f in range(folders):
        seq += 1
        folder = new_node(owner, root_id, f"folder-{f:04d}", "folder", seq)
        chunk.append(folder)
        for i in range(per_folder):
            seq += 1
            doc = new_node(owner, folder["_id"], f"photo-{i:05d}.jpg", "file", seq, size=123_456,
                           content_hash=f"{seq:064x}", blocks=[f"{seq:064x}"])
            chunk.append(doc)
            file_ids.append(doc["_id"])
            if len(chunk) >= 5000:
                db.nodes.insert_many(chunk, ordered=False)
                chunk = []
    if chunk:
        db.nodes.insert_many(chunk, ordered=False)
    db.users.update_one({"_id": owner}, {"$set": {"seq": seq}})
    return file_ids


def database_update(clients, owner: str, ids: list[str], start: int) -> None:
    """The bound, interleaved with the ops batches: the database's own cost of what every applied op needs at
    least, one node update — `bulk_write` of 100 `$set`s by _id (name, name_key, live_key, seq: the indexed
    fields a rename changes) per transaction, as the bulk path writes them; no events, no results, no HTTP."""
    from pymongo import UpdateOne

    from runtime.mongo import transaction

    for first in range(0, len(ids), 100):
        chunk = ids[first:first + 100]

        def write(session, chunk=chunk, base=start + first):
            names = [f"bound-{base + i}.jpg" for i in range(len(chunk))]
            clients.db.nodes.bulk_write([UpdateOne({"_id": n, "owner": owner},
                                                   {"$set": {"name": name, "name_key": name, "live_key": f"b/{n}",
                                                             "seq": 10_000_000 + base + i}})
                                         for i, (n, name) in enumerate(zip(chunk, names, strict=True))],
                                        ordered=True, session=session)

        transaction(clients.mongo, write)


def run_size(total: int, op_count: int, mongo_base: str | None = None) -> dict:
    from functions.files import service as files
    from gateway.wsgi import create_gateway
    from mobile_api import sync
    from runtime.clients import Clients, forget
    from runtime.ids import new_id, utcnow
    from runtime.mongo import database_name
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token
    from tests.conftest import LiveServer

    extra = {}
    if mongo_base:
        extra["PCLOUD_MONGO_URL"] = f"{mongo_base.rstrip('/')}/pcloud_bench_sync_{new_id()[:8]}?directConnection=true"
    settings = load_settings(bench_env(**extra))
    clients = Clients(settings)
    clients.ensure_indexes()
    db = clients.db
    owner = new_bench_user(db)
    root = files.get_root(db, owner)
    device_id = new_id()
    db.devices.insert_one({"_id": device_id, "kind": "phone", "owner": owner, "name": "Bench phone",
                           "platform": "android", "online": False, "last_seen": utcnow(), "paired_at": utcnow(),
                           "created_at": utcnow()})
    t = time.perf_counter()
    file_ids = seed(db, owner, root["_id"], total)
    seeded = time.perf_counter() - t
    token, _ = issue_access_token(clients.keys, settings, sub=owner, aud="pcloud")
    server = LiveServer(create_gateway(settings), port=int(settings.bind.rsplit(":", 1)[1]))
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    out: dict = {"nodes": total, "seed_s": seeded}
    try:
        # --- the changes feed after 10 changes -----------------------------------------------------------
        cursor = sync.current_cursor(db, owner)
        batch = [{"op_id": new_id(), "type": "rename", "node_id": file_ids[i], "name": f"edited-{i}.jpg",
                  "base_rev": 1} for i in range(10)]
        answer = http.post(f"{server.url}/mobile/v1/ops", json={"device_id": device_id, "ops": batch}, timeout=60)
        assert answer.status_code == 200, answer.text
        walls, dbs = [], []
        for _ in range(60):
            with Measured() as m:
                page = http.get(f"{server.url}/mobile/v1/changes", params={"cursor": cursor}, timeout=30).json()
            walls.append(m.wall)
            dbs.append(m.db)
        assert len(page["changes"]) == 10 and not page["has_more"], page
        service = []
        for _ in range(60):
            with Measured() as m:
                sync.changes(db, owner, cursor)
            service.append((m.wall, m.db))
        out["feed_ms"] = statistics.median(walls[10:]) * 1000
        out["feed_db_ms"] = statistics.median(dbs[10:]) * 1000
        out["feed_service_ms"] = statistics.median(w for w, _ in service[10:]) * 1000
        out["feed_service_db_ms"] = statistics.median(d for _, d in service[10:]) * 1000

        # --- the full listing in pages --------------------------------------------------------------------
        peak_ok = reset_peak_rss()
        before = rss_kib()
        listed, cursor_all, pages = 0, None, 0
        with Measured() as m:
            while True:
                params = {"limit": 1000}
                if cursor_all:
                    params["cursor"] = cursor_all
                page = http.get(f"{server.url}/mobile/v1/changes", params=params, timeout=60).json()
                listed += len(page["changes"])
                pages += 1
                cursor_all = page["cursor"]
                if not page["has_more"]:
                    break
        out.update(list_nodes=listed, list_pages=pages, list_s=m.wall, list_db_s=m.db,
                   list_rate=listed / m.wall, rss_before_mib=before / 1024,
                   rss_peak_growth_mib=(rss_kib("VmHWM") - before) / 1024 if peak_ok else float("nan"))

        # --- ops throughput: non-conflicting renames in batches of 200, each followed by the bound on its nodes --
        ids = file_ids[10:10 + op_count]
        ops_wall = ops_db = bound_wall = 0.0
        ops_commands = 0
        for start in range(0, len(ids), 200):
            chunk = [{"op_id": new_id(), "type": "rename", "node_id": n, "name": f"renamed-{start + i}.jpg",
                      "base_rev": 1} for i, n in enumerate(ids[start:start + 200])]
            with Measured() as m:
                answer = http.post(f"{server.url}/mobile/v1/ops", json={"device_id": device_id, "ops": chunk},
                                   timeout=120).json()
            assert all(r["status"] == "applied" for r in answer["results"]), answer["results"][:2]
            ops_wall, ops_db, ops_commands = ops_wall + m.wall, ops_db + m.db, ops_commands + m.commands
            began = time.perf_counter()
            database_update(clients, owner, ids[start:start + 200], start)
            bound_wall += time.perf_counter() - began
        out.update(ops=len(ids), ops_s=ops_wall, ops_db_s=ops_db, ops_rate=len(ids) / ops_wall,
                   ops_commands=ops_commands / max(1, len(ids)), db_update_rate=len(ids) / bound_wall)
    finally:
        server.stop()
        forget(settings)
        clients.mongo.drop_database(database_name(settings.mongo_url))
        clients.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--mongo", default=None,
                        help="mongodb://host:port of a MongoDB-wire server to use (default: the local one)")
    args = parser.parse_args(argv)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"seeding {size:,} nodes and measuring …", flush=True)
        r = run_size(size, min(args.ops, size - 20), args.mongo)
        results.append(r)
        print(f"  seeded in {r['seed_s']:.1f} s", flush=True)
    print()
    print("changes feed after 10 changes (median of 50, HTTP through the gateway):")
    for r in results:
        print(f"  {r['nodes']:>7,} nodes: {r['feed_ms']:6.2f} ms  (database wait {r['feed_db_ms']:5.2f} ms, "
              f"ours+HTTP {r['feed_ms'] - r['feed_db_ms']:5.2f} ms; service alone {r['feed_service_ms']:5.2f} ms "
              f"of which database {r['feed_service_db_ms']:5.2f} ms)")
    if len(results) >= 2:
        print(f"  ratio largest/smallest: {results[-1]['feed_ms'] / results[0]['feed_ms']:.2f} (target ≤ 1.5; "
              f"target ≤ 20 ms each)")
    print("full listing, pages of 1,000:")
    for r in results:
        print(f"  {r['nodes']:>7,} nodes: {r['list_nodes']:,} in {r['list_pages']} pages, {r['list_s']:.1f} s = "
              f"{r['list_rate']:,.0f} nodes/s (database wait {r['list_db_s'] / r['list_s']:.0%}); process RSS "
              f"{r['rss_before_mib']:.0f} MiB, peak growth while listing {r['rss_peak_growth_mib']:.1f} MiB")
    print("ops endpoint, non-conflicting renames, batches of 200 (each followed by the bound on its nodes):")
    for r in results:
        print(f"  {r['nodes']:>7,} nodes: {r['ops']:,} ops in {r['ops_s']:.1f} s = {r['ops_rate']:,.0f} ops/s "
              f"(target ≥ 500); database wait {r['ops_db_s'] / r['ops_s']:.0%} "
              f"({r['ops_commands']:.1f} commands/op), ours+HTTP {1 - r['ops_db_s'] / r['ops_s']:.0%}")
        print(f"  {'':>7}  bound, same run: the database alone updates {r['db_update_rate']:,.0f} nodes/s (bulk_write "
              f"of 100 in a transaction, interleaved); ops/bound = {r['ops_rate'] / r['db_update_rate']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
