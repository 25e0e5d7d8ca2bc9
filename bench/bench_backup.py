"""A first backup through the local store (`file://`) against the client's own SHA-256 rate, and the requests an
unchanged re-backup costs with the three client flows, through the real gateway (gunicorn) in one run.

1. Baseline: SHA-256 of every block of the tree in memory, one thread (what a client must at least spend).
2. First backup into /first with the batch flow a client uses since issue 18: for each group of files
   (≤ --batch files, ≤ 2,000 blocks, ≤ 256 MiB) read and hash them, one POST /files/v1/uploads/batch
   (commit=if_complete), PUT the missing blocks (--put-threads at once) to the local store's presigned links
   (functions/blobs, in the gateway), one POST /files/v1/uploads/commit; two groups in flight at once, so
   hashing one overlaps sending the other. Ratio = backup throughput / SHA-256 rate.
3. Unchanged re-backup of the same tree into a new folder, three ways: negotiate + commit per file (before),
   commit=if_complete per file, and the batch (one request per --batch files). Requests per file and wall.

Usage: python -m bench.bench_backup [--files N] [--total-mib N] [--batch N] [--put-threads N] [--small]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.bench_files import GUNICORN_ARGS, make_tree, wait_for
from bench.common import bench_env, gunicorn, new_bench_user, start_process

BLOCK = 4 * 1024 * 1024
MIB = 1024 * 1024
GROUP_BYTES = 256 * MIB
GROUP_BLOCKS = 2000


def blocks_of(data: bytes) -> list[dict]:
    return [{"hash": hashlib.sha256(data[i:i + BLOCK]).hexdigest(), "size": len(data[i:i + BLOCK])}
            for i in range(0, len(data), BLOCK)]


class Client:
    """One user's HTTP client; counts API requests by kind and block PUTs."""

    def __init__(self, base: str, token: str, put_threads: int):
        self.base, self.token = base, token
        self.local = threading.local()
        self.puts = ThreadPoolExecutor(put_threads)
        self.lock = threading.Lock()
        self.folders: dict[tuple, str] = {}
        self.reset()

    def reset(self) -> None:
        self.counts = {"negotiate": 0, "commit": 0, "batch": 0, "batch_commit": 0, "folder": 0, "put": 0}
        self.seconds = dict.fromkeys(self.counts, 0.0)
        self.bytes_sent = 0
        self.hash_s = 0.0

    def http(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers["Authorization"] = f"Bearer {self.token}"
        return self.local.session

    def api(self, kind: str, method: str, path: str, **kw):
        began = time.perf_counter()
        answer = self.http().request(method, f"{self.base}/files/v1{path}", timeout=300, **kw)
        assert answer.status_code < 300, answer.text[:300]
        with self.lock:
            self.counts[kind] += 1
            self.seconds[kind] += time.perf_counter() - began
        return answer.json()

    def folder(self, parent_id: str, parts: tuple) -> str:
        with self.lock:
            for depth in range(1, len(parts) + 1):
                key = (parent_id, parts[:depth])
                if key not in self.folders:
                    above = self.folders.get((parent_id, parts[:depth - 1]), parent_id)
                    self.counts["folder"] += 1
                    made = self.http().post(f"{self.base}/files/v1/folders", timeout=60,
                                            json={"parent_id": above, "name": parts[depth - 1]})
                    assert made.status_code == 201, made.text
                    self.folders[key] = made.json()["id"]
        return self.folders[(parent_id, parts)] if parts else parent_id

    def put(self, item: dict, chunk: bytes) -> None:
        began = time.perf_counter()
        answer = self.http().request(item["method"], item["url"], data=chunk, headers=item["headers"], timeout=300)
        assert answer.status_code in (200, 201, 204), answer.text[:300]
        with self.lock:
            self.counts["put"] += 1
            self.seconds["put"] += time.perf_counter() - began
            self.bytes_sent += len(chunk)

    def read_and_hash(self, path: Path) -> tuple[bytes, list[dict]]:
        data = path.read_bytes()
        began = time.perf_counter()
        blocks = blocks_of(data)
        with self.lock:
            self.hash_s += time.perf_counter() - began
        return data, blocks

    # --- flows ----------------------------------------------------------------------------------------------
    def batch_group(self, items: list[tuple[str, Path, Path]]) -> None:
        """Read and hash, negotiate the group in one request, PUT what is missing, commit the rest in one."""
        bodies, datas = [], []
        for folder_id, path, rel in items:
            data, blocks = self.read_and_hash(path)
            datas.append((data, blocks))
            bodies.append({"parent_id": folder_id, "name": rel.name, "size": len(data), "blocks": blocks,
                           "commit": "if_complete"})
        results = self.api("batch", "POST", "/uploads/batch", json={"uploads": bodies})["results"]
        pending, puts = [], []
        for result, (data, blocks) in zip(results, datas, strict=True):
            assert "error" not in result or result["error"] is None, result
            if result["committed"]:
                continue
            index = {b["hash"]: i for i, b in enumerate(blocks)}
            puts += [self.puts.submit(self.put, m, data[index[m["hash"]] * BLOCK:][:BLOCK])
                     for m in result["missing"]]
            pending.append(result["upload_id"])
        for future in puts:
            future.result()
        if pending:
            done = self.api("batch_commit", "POST", "/uploads/commit", json={"upload_ids": pending})["results"]
            assert all(r["status"] in (200, 201) for r in done), [r for r in done if r["status"] >= 300][:2]

    def per_file(self, folder_id: str, path: Path, rel: Path, at_once: bool) -> None:
        data, blocks = self.read_and_hash(path)
        body = {"parent_id": folder_id, "name": rel.name, "size": len(data), "blocks": blocks}
        if at_once:
            body["commit"] = "if_complete"
        started = self.api("negotiate", "POST", "/uploads", json=body)
        index = {b["hash"]: i for i, b in enumerate(blocks)}
        for future in [self.puts.submit(self.put, m, data[index[m["hash"]] * BLOCK:][:BLOCK])
                       for m in started["missing"]]:
            future.result()
        if not started.get("committed"):
            self.api("commit", "POST", f"/uploads/{started['upload_id']}/commit")


def groups_of(targets: list[tuple[str, Path, Path]], batch: int) -> list[list]:
    groups, current, size, blocks = [], [], 0, 0
    for target in targets:
        n = target[1].stat().st_size
        if current and (len(current) >= batch or size + n > GROUP_BYTES or blocks + n // BLOCK + 1 > GROUP_BLOCKS):
            groups.append(current)
            current, size, blocks = [], 0, 0
        current.append(target)
        size += n
        blocks += n // BLOCK + 1
    return groups + ([current] if current else [])


def backup(client: Client, root_id: str, name: str, tree: Path, paths: list[Path], flow: str, batch: int
           ) -> tuple[float, float]:
    """Back the tree up into /name with `flow` (batch | per_file | at_once): (folders' wall, files' wall).
    Files go into one folder per year (the first level of the tree), as a photo library is laid out."""
    client.reset()
    began = time.perf_counter()
    top = client.folder(root_id, (name,))
    targets = [(client.folder(top, p.relative_to(tree).parts[:1]), p, p.relative_to(tree)) for p in paths]
    folders = time.perf_counter() - began
    began = time.perf_counter()
    if flow == "batch":
        with ThreadPoolExecutor(2) as pool:  # two groups in flight: hashing one while the other is sent
            for future in [pool.submit(client.batch_group, g) for g in groups_of(targets, batch)]:
                future.result()
    else:
        for folder_id, path, rel in targets:
            client.per_file(folder_id, path, rel, at_once=flow == "at_once")
    return folders, time.perf_counter() - began


def sha256_rate(paths: list[Path]) -> tuple[float, int]:
    """The baseline: bytes per second of SHA-256 over every block, one thread, data already in memory."""
    total, seconds = 0, 0.0
    for path in paths:
        data = path.read_bytes()
        began = time.perf_counter()
        blocks_of(data)
        seconds += time.perf_counter() - began
        total += len(data)
    return total / seconds, total


def store_rate(root: Path, count: int = 8) -> float:
    """A bound: bytes per second the local store itself takes a block PUT from memory (SHA-256 again, write,
    fsync, rename into staging), one thread, no HTTP and no database."""
    import io

    from runtime.store import LocalBlobStore

    store = LocalBlobStore(root, secret=b"bench" * 8, public_url="http://127.0.0.1")
    data = os.urandom(BLOCK)
    digest = hashlib.sha256(data).hexdigest()
    began = time.perf_counter()
    for i in range(count):
        store.put_staged(f"bound{i}", digest, io.BytesIO(data), BLOCK)
    return count * BLOCK / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 48 files, 128 MiB")
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--dup-share", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--put-threads", type=int, default=4)
    args = parser.parse_args()
    if args.small:
        args.files, args.total_mib = 48, 128
    env = bench_env()
    from runtime.clients import Clients
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    settings = load_settings(env)
    clients = Clients(settings)
    owner = new_bench_user(clients.db)
    token, _ = issue_access_token(clients.keys, settings, sub=owner, aud="pcloud")
    gateway = start_process([gunicorn(), *GUNICORN_ARGS, "-b", settings.bind, "gateway.wsgi:app"], env)
    workdir = Path(tempfile.mkdtemp(prefix="pcloud-bench-tree-"))
    try:
        wait_for(f"{settings.public_url}/healthz", gateway)
        client = Client(settings.public_url, token, args.put_threads)
        root_id = client.http().get(f"{settings.public_url}/files/v1/root", timeout=60).json()["id"]
        paths = make_tree(workdir, args.files, args.total_mib * MIB, args.dup_share)
        rate, total = sha256_rate(paths)
        load = os.getloadavg()[0]
        print(f"tree: {len(paths)} files, {total / MIB:.0f} MiB ({args.dup_share:.0%} copies); store file:// "
              f"(functions/blobs in the gateway); gateway gunicorn {' '.join(GUNICORN_ARGS)}; batches of "
              f"{args.batch} files, {args.put_threads} PUT threads; {os.cpu_count()} cores, load {load:.1f}")
        print(f"baseline: client SHA-256, one thread, in memory: {rate / MIB:7.1f} MiB/s; bound: the local store "
              f"taking a 4 MiB block from memory (SHA-256, write, fsync) {store_rate(workdir / 'bound') / MIB:6.1f} "
              f"MiB/s, one thread")
        folders, wall = backup(client, root_id, "first", workdir, paths, "batch", args.batch)
        c, t = client.counts, client.seconds
        print(f"first backup (batch flow): files {wall:6.2f} s = {total / wall / MIB:6.1f} MiB/s | ratio to SHA-256 "
              f"{total / wall / rate:.2f}x (goal >= 0.5x) | {client.bytes_sent / MIB:.0f} MiB sent in {c['put']} "
              f"PUTs")
        print(f"  requests: {c['batch']} batch negotiations ({t['batch']:.2f} s) + {c['batch_commit']} batch commits "
              f"({t['batch_commit']:.2f} s) + PUTs {t['put']:.2f} s summed over threads | client hashing "
              f"{client.hash_s:.2f} s | before it, {c['folder']} folders in {folders:.2f} s")
        print("unchanged re-backup of the same tree into a new folder (0 bytes to send):")
        for flow, label in (("per_file", "negotiate + commit per file (before)"),
                            ("at_once", "commit=if_complete per file"), ("batch", f"batch of {args.batch}")):
            _, wall = backup(client, root_id, f"again-{flow}", workdir, paths, flow, args.batch)
            c = client.counts
            upload_requests = c["negotiate"] + c["commit"] + c["batch"] + c["batch_commit"]
            print(f"  {label:40s}: {upload_requests:4d} upload requests = {upload_requests / len(paths):5.3f} per "
                  f"file | {client.bytes_sent} bytes sent | wall {wall:6.2f} s ({len(paths) / wall:6.1f} files/s) "
                  f"| + {c['folder']} folders first")
    finally:
        gateway.terminate()
        gateway.wait(10)
        clients.mongo.drop_database(clients.db.name)
        clients.close()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
