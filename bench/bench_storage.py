"""Storage durability figures (issue 19), each with a same-run baseline and a ratio:

- upload throughput into a `replicas: 2` folder vs a `replicas: 1` folder (acknowledged = commit answered;
  durable = until the placement worker has made the second copy);
- repair rate (MB/s) after a whole store's copies are lost;
- scrub rate vs a raw SHA-256 of the same bytes in memory;
- upload and download of an `encryption: at_rest` folder vs a plain one (the upload is acknowledged the same
  way; sealing is the worker's, reported as its own rate).

Real stack in one process: the gateway over HTTP (werkzeug, threaded) on the local SecantusDB/Redis, two local
disks as stores (`default` and `disk2`), the placement worker called the way its periodic job calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import shutil
import threading
import time

import requests
from werkzeug.serving import make_server

from bench.common import bench_env, new_bench_user

BLOCK = 4 * 1024 * 1024


class Client:
    def __init__(self, base: str, token: str):
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kw) -> requests.Response:
        answer = self.http.request(method, f"{self.base}/files/v1{path}", timeout=120, **kw)
        if answer.status_code >= 400:
            raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer

    def folder(self, name: str, **policy) -> str:
        root = self.call("GET", "/root").json()["id"]
        folder = self.call("POST", "/folders", json={"parent_id": root, "name": name}).json()["id"]
        if policy:
            self.call("PUT", f"/nodes/{folder}/policy", json=policy)
        return folder

    def upload(self, parent: str, name: str, data: bytes) -> str:
        blocks = [{"hash": hashlib.sha256(data[i:i + BLOCK]).hexdigest(), "size": len(data[i:i + BLOCK])}
                  for i in range(0, len(data), BLOCK)]
        index = {b["hash"]: i for i, b in enumerate(blocks)}
        started = self.call("POST", "/uploads", json={"parent_id": parent, "name": name, "size": len(data),
                                                      "blocks": blocks}).json()
        for item in started["missing"]:
            i = index[item["hash"]]
            put = self.http.request(item["method"], item["url"], data=data[i * BLOCK:(i + 1) * BLOCK],
                                    headers=item["headers"], timeout=120)
            put.raise_for_status()
        return self.call("POST", f"/uploads/{started['upload_id']}/commit").json()["id"]

    def download(self, node_id: str) -> bytes:
        return self.call("GET", f"/nodes/{node_id}/content").content


def mbps(size: int, seconds: float) -> float:
    return size / (1024 * 1024) / max(seconds, 1e-9)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=64, help="bytes per case, in MiB (default 64)")
    parser.add_argument("--rounds", type=int, default=2, help="repeat each case, keep the best (default 2)")
    args = parser.parse_args()

    env = bench_env()
    env["PCLOUD_STORES"] = f'{{"disk2": "file://{env["PCLOUD_DATA_DIR"]}/disk2"}}'
    from functions.files import policy, replication, sealing, storage
    from gateway.wsgi import create_gateway
    from runtime.clients import clients_for
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    settings = load_settings(env)
    gateway = create_gateway(settings)
    clients = clients_for(settings)
    for module in (policy, replication, sealing):
        module.ensure_indexes(clients.db)
    server = make_server("127.0.0.1", int(settings.bind.rsplit(":", 1)[1]), gateway, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    owner = new_bench_user(clients.db)
    token, _ = issue_access_token(clients.keys, settings, sub=owner, aud="pcloud")
    api = Client(settings.public_url, token)
    size = args.mib * 1024 * 1024
    worker = lambda: storage.run_placement(clients)  # noqa: E731 - what the periodic job runs
    try:
        print(f"{args.mib} MiB per case, 4 MiB blocks, stores: default + disk2 (local disks), best of {args.rounds}")
        results: dict[str, float] = {}

        def best(label: str, fn) -> float:
            times = []
            for _ in range(args.rounds):
                times.append(fn())
            results[label] = min(times)
            return results[label]

        # 1. replicas 1 vs 2
        one = api.folder("one", replicas=1)
        two = api.folder("two", replicas=2)
        worker()

        def upload_into(folder: str, then_worker: bool = False) -> float:
            data = secrets.token_bytes(size)
            start = time.perf_counter()
            api.upload(folder, secrets.token_hex(6), data)
            if then_worker:
                worker()
            return time.perf_counter() - start

        t1 = best("upload r1", lambda: upload_into(one))
        worker()
        t1_placed = best("upload r1 placed", lambda: upload_into(one, then_worker=True))
        t2_ack = best("upload r2 ack", lambda: upload_into(two))
        worker()
        t2_durable = best("upload r2 durable", lambda: upload_into(two, then_worker=True))
        print(f"upload, replicas 1 acknowledged (commit)   : {mbps(size, t1):7.1f} MB/s  (baseline)")
        print(f"upload, replicas 2 acknowledged (commit)   : {mbps(size, t2_ack):7.1f} MB/s  "
              f"ratio {t1 / t2_ack:.2f}x")
        print(f"upload, replicas 1 + a worker pass         : {mbps(size, t1_placed):7.1f} MB/s  (baseline)")
        print(f"upload, replicas 2 durable on both copies  : {mbps(size, t2_durable):7.1f} MB/s  "
              f"ratio {t1_placed / t2_durable:.2f}x")

        # 2. scrub vs raw SHA-256, then repair after a lost disk
        copies_bytes = sum(d.get("have") and len(d["have"]) or 0 for d in clients.db.block_placements.find(
            {"wants": {"$ne": {}}}, {"have": 1})) * BLOCK
        clients.db.block_placements.update_many({}, {"$set": {"scrubbed_at": None}})
        scrubbed, t_scrub = timed(lambda: storage.run_scrub(clients))
        sample = secrets.token_bytes(64 * 1024 * 1024)
        _, t_raw = timed(lambda: [hashlib.sha256(sample[i:i + BLOCK]).digest() for i in range(0, len(sample), BLOCK)])
        raw_rate, scrub_rate = mbps(len(sample), t_raw), mbps(scrubbed["bytes"], t_scrub)
        print(f"raw SHA-256 in memory (4 MiB blocks)       : {raw_rate:7.1f} MB/s  (baseline)")
        print(f"scrub (read every copy from disk + hash)   : {scrub_rate:7.1f} MB/s  ratio {scrub_rate / raw_rate:.2f}x"
              f"  ({scrubbed['bytes'] // (1024 * 1024)} MiB, {scrubbed['checked']} blocks; "
              f"~{copies_bytes // (1024 * 1024)} MiB of copies)")
        shutil.rmtree(clients.store.backend("disk2").root)  # a disk lost
        clients.db.block_placements.update_many({}, {"$set": {"scrubbed_at": None}})
        lost = storage.run_scrub(clients)
        before = (clients.db.storage_stats.find_one({"_id": "totals"}) or {}).get("bytes_copied", 0)
        _, t_repair = timed(worker)
        copied = (clients.db.storage_stats.find_one({"_id": "totals"}) or {}).get("bytes_copied", 0) - before
        copy_rate = mbps(copied, t_repair)
        print(f"repair after losing disk2                  : {copy_rate:7.1f} MB/s  "
              f"({copied // (1024 * 1024)} MiB, {lost['missing']} copies found missing by the scrub)")

        # 3. encrypted vs plain
        plain = api.folder("plain")
        sealed = api.folder("sealed", encryption="at_rest")
        worker()
        def upload_fresh(folder: str) -> float:
            fresh = secrets.token_bytes(size)
            return timed(lambda: api.upload(folder, secrets.token_hex(6), fresh))[1]

        t_plain_up = best("plain up", lambda: upload_fresh(plain))
        t_enc_up = best("enc up", lambda: upload_fresh(sealed))
        worker()
        data = secrets.token_bytes(size)
        node_plain = api.upload(plain, "p.bin", data)
        node_enc = api.upload(sealed, "e.bin", secrets.token_bytes(size))
        worker()  # places the plain file; the sealed one's blocks are new: sealed in the timed pass below
        data_enc = secrets.token_bytes(size)
        node_enc = api.upload(sealed, "e2.bin", data_enc)
        _, t_seal = timed(worker)
        assert clients.db.nodes.find_one({"_id": node_enc}).get("sealed_rev")
        t_plain_down = best("plain down", lambda: timed(lambda: api.download(node_plain))[1])
        t_enc_down = best("enc down", lambda: timed(lambda: api.download(node_enc))[1])
        assert api.download(node_enc) == data_enc and api.download(node_plain) == data
        print(f"upload, plain folder (commit)              : {mbps(size, t_plain_up):7.1f} MB/s  (baseline)")
        print(f"upload, at_rest folder (commit)            : {mbps(size, t_enc_up):7.1f} MB/s  "
              f"ratio {t_plain_up / t_enc_up:.2f}x")
        print(f"sealing by the worker (encrypt + store)    : {mbps(size, t_seal):7.1f} MB/s  "
              "(one worker pass: read, encrypt, store, drop the plaintext)")
        print(f"download, plain                            : {mbps(size, t_plain_down):7.1f} MB/s  (baseline)")
        print(f"download, at_rest (verify + decrypt)       : {mbps(size, t_enc_down):7.1f} MB/s  "
              f"ratio {t_plain_down / t_enc_down:.2f}x")
    finally:
        server.shutdown()
        clients.mongo.drop_database(clients.db.name)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
