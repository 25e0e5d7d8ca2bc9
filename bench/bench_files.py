"""Dedup backup through the real HTTP API with S3 on a moto server, and the cost of negotiating 10,000 blocks.

1. Generate a photo-like tree (default 1 GiB, 256 files of 0.5-7.5 MiB, 25 % of the files duplicating
   another file's content), back it up through the gateway (gunicorn) into one folder, then back it up again
   into another: bytes sent, requests, wall time, the API's share of wall time (negotiate + commit), the time
   spent PUTting blocks to the store, and the client's own SHA-256 throughput (the bound of the first pass).
2. Negotiate a 10,000-block file in-process against the same database: database round trips (counted by a
   pymongo command listener), our CPU and the database wait printed separately (the MongoDB-wire server is
   itself Python), for a first negotiation (all blocks missing: 10,000 presigned PUTs) and for a re-upload
   (every block already this user's), next to a 100-block file to show the round trips stay constant.

Usage: python -m bench.bench_files [--small] [--files N] [--total-mib N] [--put-threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from pymongo import MongoClient, monitoring

from bench.common import bench_env, free_port, gunicorn, new_bench_user, start_process

BLOCK = 4 * 1024 * 1024
MIB = 1024 * 1024
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
GUNICORN_ARGS = ["-w", "2", "-k", "gthread", "--threads", "8", "--timeout", "120"]


def wait_for(url: str, proc, timeout: float = 60.0) -> None:
    """Until the URL answers (a loaded machine may take more than a second per try)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def make_tree(root: Path, files: int, total: int, dup_share: float, seed: int = 7) -> list[Path]:
    """Random (incompressible, like JPEGs) files in nested folders; every 1/dup_share-th file is a copy of an
    earlier one. Sizes are planned first and scaled so the whole tree, copies included, is `total` bytes."""
    rng = random.Random(seed)
    every = round(1 / dup_share)
    plan: list[tuple[int, int | None]] = []  # (size, index of the file it copies)
    for i in range(files):
        if i % every == every - 1:
            source = rng.choice([k for k, (_, src) in enumerate(plan) if src is None])
            plan.append((plan[source][0], source))
        else:
            plan.append((int(rng.uniform(0.125, 1.875) * total / files), None))
    scale = total / sum(size for size, _ in plan)
    sizes = [max(64 * 1024, int(size * scale)) for size, _ in plan]
    paths = []
    for i, (_, source) in enumerate(plan):
        path = root / f"{2015 + i % 10}" / f"{1 + i % 12:02d}" / f"IMG_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            path.write_bytes(os.urandom(sizes[i]))
        else:
            shutil.copyfile(paths[source], path)
        paths.append(path)
    return paths


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.bytes_sent = self.api_requests = self.put_requests = self.negotiates = 0
        self.api_s = self.put_s = self.hash_s = self.read_s = 0.0
        self.hashed = 0

    def add(self, **kw):
        with self.lock:
            for key, value in kw.items():
                setattr(self, key, getattr(self, key) + value)


class Backup:
    """What a phone or desktop client does for each file: hash blocks, negotiate, PUT what is missing, commit."""

    def __init__(self, base: str, token: str, put_threads: int):
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.put_pool = ThreadPoolExecutor(put_threads)
        self.folders: dict[tuple, str] = {}
        self.stats = Stats()

    def api(self, method: str, path: str, **kw) -> requests.Response:
        began = time.perf_counter()
        response = self.http.request(method, f"{self.base}/files/v1{path}", timeout=120, **kw)
        self.stats.add(api_s=time.perf_counter() - began, api_requests=1)
        return response

    def folder(self, parent_id: str, parts: tuple) -> str:
        for depth in range(1, len(parts) + 1):
            key = (parent_id, parts[:depth])
            if key not in self.folders:
                made = self.api("POST", "/folders", json={"parent_id": self.folders.get((parent_id, parts[:depth - 1]),
                                                                                      parent_id),
                                                          "name": parts[depth - 1]})
                assert made.status_code == 201, made.text
                self.folders[key] = made.json()["id"]
        return self.folders[(parent_id, parts)] if parts else parent_id

    def put(self, item: dict, chunk: bytes) -> None:
        began = time.perf_counter()
        answer = requests.request(item["method"], item["url"], data=chunk, headers=item["headers"], timeout=120)
        assert answer.status_code in (200, 201, 204), answer.text
        self.stats.add(put_s=time.perf_counter() - began, put_requests=1, bytes_sent=len(chunk))

    def file(self, parent_id: str, path: Path, rel: Path) -> None:
        began = time.perf_counter()
        data = path.read_bytes()
        read_done = time.perf_counter()
        blocks = [{"hash": hashlib.sha256(data[i:i + BLOCK]).hexdigest(), "size": len(data[i:i + BLOCK])}
                  for i in range(0, len(data), BLOCK)]
        self.stats.add(read_s=read_done - began, hash_s=time.perf_counter() - read_done, hashed=len(data))
        folder = self.folder(parent_id, rel.parent.parts)
        negotiated = self.api("POST", "/uploads", json={"parent_id": folder, "name": rel.name, "size": len(data),
                                                        "blocks": blocks})
        assert negotiated.status_code == 201, negotiated.text
        self.stats.add(negotiates=1)
        body = negotiated.json()
        index = {b["hash"]: i for i, b in enumerate(blocks)}
        puts = [self.put_pool.submit(self.put, item, data[index[item["hash"]] * BLOCK:][:BLOCK])
                for item in body["missing"]]
        for future in puts:
            future.result()
        committed = self.api("POST", f"/uploads/{body['upload_id']}/commit")
        assert committed.status_code == 201, committed.text

    def run(self, root_id: str, name: str, tree: Path, paths: list[Path]) -> tuple[Stats, float]:
        self.stats = Stats()
        began = time.perf_counter()
        top = self.folder(root_id, (name,))
        for path in paths:
            self.file(top, path, path.relative_to(tree))
        return self.stats, time.perf_counter() - began


def report(label: str, stats: Stats, wall: float, files: int) -> None:
    print(f"{label}: wall {wall:7.2f} s | block bytes sent {stats.bytes_sent / MIB:8.1f} MiB | requests: "
          f"{stats.api_requests} API ({stats.negotiates} negotiate = {stats.negotiates / files:.2f}/file) + "
          f"{stats.put_requests} block PUTs")
    print(f"{'':8}time: API {stats.api_s:6.2f} s ({100 * stats.api_s / wall:4.1f} % of wall) | block PUTs "
          f"{stats.put_s:6.2f} s (summed over threads) | client SHA-256 {stats.hash_s:6.2f} s = "
          f"{stats.hashed / MIB / max(stats.hash_s, 1e-9):6.0f} MB/s | reading files {stats.read_s:5.2f} s")


class Counter(monitoring.CommandListener):
    def __init__(self):
        self.count, self.wait_ns, self.lock = 0, 0, threading.Lock()

    def started(self, event):
        pass

    def succeeded(self, event):
        with self.lock:
            self.count += 1
            self.wait_ns += event.duration_micros * 1000

    def failed(self, event):
        self.succeeded(event)


class BotocorePerUrl:
    """The baseline signer (before issue 18): one full botocore `generate_presigned_url` per block."""

    def __init__(self, store):
        self.store = store

    def presign_puts(self, blocks, expires_in=3600, upload_id=None):
        return [self.store.presign_put(d, n, expires_in, upload_id) for d, n in blocks]


def presign_rates(store, count: int = 2000) -> tuple[float, float]:
    """µs per presigned PUT: botocore per URL vs the batch signer (cached SigV4 key), interleaved, best of 3."""
    blocks = [(secrets.token_hex(32), BLOCK) for _ in range(count)]
    per_url, batch = [], []
    for _ in range(3):
        began = time.perf_counter()
        BotocorePerUrl(store).presign_puts(blocks, 86400, "bench")
        per_url.append((time.perf_counter() - began) / count * 1e6)
        began = time.perf_counter()
        store.presign_puts(blocks, 86400, "bench")
        batch.append((time.perf_counter() - began) / count * 1e6)
    return min(per_url), min(batch)


def negotiate_cost(settings, owner: str, root_id: str, blocks: int, case: str, signer: str = "batch",
                   window: int | None = None) -> dict:
    """One in-process negotiation: round trips, wall, our CPU and the database wait.

    case: "new" (no block known: each gets a presigned PUT), "same_file" (the user holds a file with this
    content, as in a second backup) or "owned_blocks" (every block is the user's, but in other files).
    signer "botocore": one botocore call per URL (the baseline); window: url_window (only the first N signed)."""
    from functions.files import tree, uploads
    from runtime.mongo import database_name
    from runtime.store import make_store

    listener = Counter()
    client = MongoClient(settings.mongo_url, tz_aware=True, event_listeners=[listener])
    db = client[database_name(settings.mongo_url)]
    store = make_store(settings, secret=b"bench", ensure=False)
    if signer == "botocore":
        store = BotocorePerUrl(store)
    hashes = [secrets.token_hex(32) for _ in range(blocks)]
    if case != "new":  # as after an earlier backup: the blocks exist and are this user's
        db.blocks.insert_many([{"_id": h, "size": BLOCK, "refs": 1, "zero_since": None, "state": "live"}
                               for h in hashes])
        db.block_owners.insert_many([{"_id": f"{owner}:{h}", "user": owner, "hash": h} for h in hashes])
    if case == "same_file":
        db.nodes.insert_one(tree.new_node(owner, root_id, f"held-{blocks}.bin", "file", 0, size=BLOCK * blocks,
                                          content_hash=uploads.content_hash(hashes), blocks=hashes))
    body = {"parent_id": root_id, "name": f"big-{blocks}-{case}.bin", "size": BLOCK * blocks,
            "blocks": [{"hash": h, "size": BLOCK} for h in hashes]}
    listener.count = listener.wait_ns = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    upload = uploads.negotiate_upload(db, store, owner, body, max_blocks=max(blocks, 10000), url_window=window)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    client.close()
    return {"blocks": blocks, "case": case, "missing": upload["missing_count"], "urls": len(upload["missing"]),
            "round_trips": listener.count,
            "wall": wall, "cpu": cpu, "db_wait": listener.wait_ns / 1e9}


def backups(args, workdir: Path, client: Backup, root_id: str) -> None:
    began = time.perf_counter()
    paths = make_tree(workdir, args.files, args.total_mib * MIB, args.dup_share)
    total = sum(p.stat().st_size for p in paths)
    unique = len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
    print(f"tree: {len(paths)} files, {total / MIB:.0f} MiB, {len(paths) - unique} files duplicate another's "
          f"content (generated in {time.perf_counter() - began:.1f} s); S3 = moto server; gateway = gunicorn "
          f"{' '.join(GUNICORN_ARGS)}; {args.put_threads} PUT threads per file; machine: {os.cpu_count()} cores")
    first, wall1 = client.run(root_id, "backup-1", workdir, paths)
    report("pass 1", first, wall1, len(paths))
    second, wall2 = client.run(root_id, "backup-2", workdir, paths)
    report("pass 2", second, wall2, len(paths))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="a quick run: 24 files, 64 MiB, 1,000-block negotiation")
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--dup-share", type=float, default=0.25)
    parser.add_argument("--put-threads", type=int, default=4)
    parser.add_argument("--big-blocks", type=int, default=10000)
    parser.add_argument("--negotiation-only", action="store_true", help="skip the two backup passes")
    args = parser.parse_args()
    if args.small:
        args.files, args.total_mib, args.big_blocks = 24, 64, 1000
    os.environ.update(AWS)  # dummy credentials for moto, read by boto3 in this process and the gateway's

    moto_port = free_port()
    moto = start_process([os.path.join(os.path.dirname(gunicorn()), "moto_server"), "-H", "127.0.0.1", "-p",
                          str(moto_port)], AWS)
    try:
        run_with(args, moto, moto_port)
    finally:
        moto.terminate()
        moto.wait(10)


def run_with(args, moto, moto_port: int) -> None:
    wait_for(f"http://127.0.0.1:{moto_port}/", moto)
    bucket = f"pcloud-bench-{secrets.token_hex(4)}"
    env = bench_env(PCLOUD_STORE_URL=f"s3://{bucket}?endpoint=http://127.0.0.1:{moto_port}&region=us-east-1",
                    **AWS)
    from runtime.clients import Clients
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    settings = load_settings(env)
    clients = Clients(settings)
    clients.store.check()  # building the store creates the bucket
    owner = new_bench_user(clients.db)
    token, _ = issue_access_token(clients.keys, settings, sub=owner, aud="pcloud")
    gateway = start_process([gunicorn(), *GUNICORN_ARGS, "-b", settings.bind, "gateway.wsgi:app"], env)
    workdir = Path(tempfile.mkdtemp(prefix="pcloud-bench-tree-"))
    try:
        wait_for(f"{settings.public_url}/healthz", gateway)
        client = Backup(settings.public_url, token, args.put_threads)
        root_id = client.api("GET", "/root").json()["id"]
        if not args.negotiation_only:
            backups(args, workdir, client, root_id)
        print(f"negotiation in-process (database {settings.mongo_url.split('?')[0].rsplit('/', 1)[0]}, "
              f"presigning against moto):")
        per_url, batch = presign_rates(clients.store)
        print(f"  presigned PUT, same run: botocore per URL {per_url:6.1f} µs | batch signer (botocore signs the "
              f"first, the rest with its cached SigV4 key) {batch:5.1f} µs | ratio {per_url / batch:.1f}x")
        labels = {"same_file": "re-upload (user holds this file)", "new": "all blocks new",
                  "owned_blocks": "blocks owned, in other files"}
        runs = [("same_file", "batch", None), ("new", "botocore", None), ("new", "batch", None),
                ("new", "batch", 256), ("owned_blocks", "batch", None)]
        for case, signer, window in runs:
            for blocks in (100, args.big_blocks):
                cost = negotiate_cost(settings, owner, root_id, blocks, case, signer, window)
                how = "" if case != "new" else (" (botocore per URL)" if signer == "botocore" else
                                                f" (window of {window} URLs)" if window else " (batch signer)")
                print(f"  {cost['blocks']:6d} blocks, {labels[case] + how:46s}: {cost['round_trips']:2d} db round "
                      f"trips | wall {cost['wall'] * 1000:8.1f} ms = our CPU {cost['cpu'] * 1000:7.1f} ms + db wait "
                      f"{cost['db_wait'] * 1000:8.1f} ms | missing {cost['missing']}, URLs {cost['urls']}")
    finally:
        gateway.terminate()
        gateway.wait(10)
        clients.mongo.drop_database(clients.db.name)
        clients.close()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
