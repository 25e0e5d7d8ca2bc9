"""Knowledge graph figures, each against a baseline measured in the same run on the same database.

1. Mutations: createNode with its event (one transaction: node, per-owner seq, event) through the GraphQL
   service, and the same through the store alone, vs raw insert_one of the same document → ratios (goal ≥ 0.5×).
2. Query: 500 faces with one relation level (each face's image) → p50 / p99 of the GraphQL service
   (goal p50 ≤ 50 ms) and over HTTP through a gateway process, vs the two raw finds the dataloader issues.
Usage: python -m bench.bench_graph [--mutations N] [--queries N] [--mongo URL]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.common import bench_env, free_port, gunicorn, start_process
from functions.graph import nodes, registry, schema, service
from runtime.clients import Clients
from runtime.identity import Identity
from runtime.ids import new_id, utcnow
from runtime.settings import load_settings
from runtime.tokens import issue_access_token

SDL_PHOTOS = "type Image @node { file_id: String!  name: String @search  width: Int }"
SDL_FACES = 'type Face @node { image: photos_Image @inverse(field: "faces")  score: Float }\n' \
            "extend type photos_Image { faces: [Face] }"
CREATE = 'mutation($d: JSON!) { createNode(type: "photos.Image", data: $d) { id rev } }'
QUERY = '{ nodes(type: "faces.Face", first: 500) { items { id ... on faces_Face { score image { id name } } } } }'


def _interleaved(n: int, fns: dict) -> dict[str, list[float]]:
    """Each round runs every variant once, in turn, so load from elsewhere on the machine hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(n):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(i)
            samples[name].append(time.perf_counter() - start)
    return samples


def bench_mutations(clients: Clients, n: int) -> dict:
    db = clients.db
    user = new_id()
    ident = Identity(user_id=user)
    model = schema.current(db).model
    store = nodes.NodeStore(db, clients.mongo, model, ident)

    def raw(i):
        now = utcnow()
        db.graph_nodes_raw.insert_one({"_id": new_id(), "owner": user, "type": "photos.Image", "rev": 1,
                                       "data": {"file_id": f"f{i}", "name": f"img {i}", "width": i},
                                       "created_at": now, "updated_at": now})

    def via_store(i):
        store.create("photos.Image", {"file_id": f"f{i}", "name": f"img {i}", "width": i})

    def via_graphql(i):
        out = service.run(db, clients.mongo, ident, {"query": CREATE, "variables": {
            "d": {"file_id": f"f{i}", "name": f"img {i}", "width": i}}})
        assert "errors" not in out, out

    for fn in (raw, via_store, via_graphql):  # warm: connections, indexes, schema
        for i in range(20):
            fn(i)
    samples = _interleaved(n, {"raw": raw, "store": via_store, "graphql": via_graphql})
    rates = {name: len(times) / sum(times) for name, times in samples.items()}
    assert db.events.count_documents({"owner": user}) == db.graph_nodes.count_documents({"owner": user})
    return rates


def bench_concurrent(clients: Clients, n: int, threads: int) -> dict:
    """The same two writes from `threads` clients at once (each its own user): what the server sustains."""
    db = clients.db
    model = schema.current(db).model

    def raw_worker(k: int, count: int):
        user = new_id()
        for i in range(count):
            now = utcnow()
            db.graph_nodes_raw.insert_one({"_id": new_id(), "owner": user, "type": "photos.Image", "rev": 1,
                                           "data": {"file_id": f"f{i}", "name": f"img {i}", "width": i},
                                           "created_at": now, "updated_at": now})

    def graph_worker(k: int, count: int):
        store = nodes.NodeStore(db, clients.mongo, model, Identity(user_id=new_id()))
        for i in range(count):
            store.create("photos.Image", {"file_id": f"f{i}", "name": f"img {i}", "width": i})

    totals = {"raw": [0, 0.0], "store": [0, 0.0]}
    per = max(1, n // threads // 2)
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):  # two alternating rounds of each
            for name, worker in (("raw", raw_worker), ("store", graph_worker)):
                start = time.perf_counter()
                list(pool.map(worker, range(threads), [per] * threads))
                totals[name][0] += per * threads
                totals[name][1] += time.perf_counter() - start
    return {name: count / elapsed for name, (count, elapsed) in totals.items()}


def seed_faces(clients: Clients, user: str, faces: int = 500, images: int = 100) -> None:
    now = utcnow()
    image_ids = [new_id() for _ in range(images)]
    docs = [{"_id": iid, "owner": user, "type": "photos.Image", "rev": 1, "created_at": now, "updated_at": now,
             "data": {"file_id": iid, "name": f"img {k}", "faces": []}} for k, iid in enumerate(image_ids)]
    for k in range(faces):
        docs.append({"_id": new_id(), "owner": user, "type": "faces.Face", "rev": 1, "created_at": now,
                     "updated_at": now, "data": {"image": image_ids[k % images], "score": 0.5}})
    clients.db.graph_nodes.insert_many(docs)


def _pcts(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def bench_query(clients: Clients, user: str, n: int) -> dict:
    db = clients.db
    ident = Identity(user_id=user)

    def graphql(_):
        out = service.run(db, clients.mongo, ident, {"query": QUERY})
        assert len(out["data"]["nodes"]["items"]) == 500 and "errors" not in out

    def raw(_):
        faces = list(db.graph_nodes.find({"owner": user, "type": "faces.Face"}).sort("_id", 1).limit(501))
        ids = list({f["data"]["image"] for f in faces})
        assert len(list(db.graph_nodes.find({"_id": {"$in": ids}, "owner": user}))) == 100

    _interleaved(3, {"raw": raw, "graphql": graphql})
    samples = _interleaved(n, {"raw": raw, "graphql": graphql})
    return {name: _pcts([t * 1000 for t in times]) for name, times in samples.items()}


def bench_http(env: dict, settings, clients: Clients, user: str, n: int) -> tuple[float, float]:
    token, _ = issue_access_token(clients.keys, settings, sub=user, aud="pcloud")
    url = f"http://{env['PCLOUD_BIND']}"
    proc = start_process([gunicorn(), "-b", env["PCLOUD_BIND"], "-w", "1", "--threads", "2", "gateway.wsgi:app"],
                         env, ready_url=f"{url}/healthz")
    try:
        http = requests.Session()
        headers = {"Authorization": f"Bearer {token}"}
        samples = []
        for i in range(n + 3):
            start = time.perf_counter()
            r = http.post(f"{url}/graph/v1/graphql", json={"query": QUERY}, headers=headers, timeout=60)
            elapsed = (time.perf_counter() - start) * 1000
            assert r.status_code == 200 and len(r.json()["data"]["nodes"]["items"]) == 500, r.text[:300]
            if i >= 3:
                samples.append(elapsed)
        return _pcts(samples)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mutations", type=int, default=500)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--mongo", help="another MongoDB-wire server, e.g. mongodb://127.0.0.1:27018/")
    args, _ = parser.parse_known_args(argv)
    env = bench_env()
    server = None
    if args.mongo:
        env["PCLOUD_MONGO_URL"] = args.mongo.rstrip("/") + "/" + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
    else:  # a SecantusDB of its own (in memory, as `make test` runs), not the one `make run` shares
        server, base = start_secantus()
        env["PCLOUD_MONGO_URL"] = base + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
    try:
        run(args, env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)


def start_secantus() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "secantusd-py"), "--host", "127.0.0.1",
                             "--port", str(port), "--storage-path", ":memory:", "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"mongodb://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("SecantusDB did not start")


def run(args, env: dict) -> None:
    settings = load_settings(env)
    clients = Clients(settings)
    try:
        clients.ensure_indexes()
        registry.install_namespace(clients.db, "photos", SDL_PHOTOS, "bench-photos")
        registry.install_namespace(clients.db, "faces", SDL_FACES, "bench-faces", {"photos.Image"})
        rates = bench_mutations(clients, args.mutations)
        parallel = bench_concurrent(clients, args.mutations, args.threads)
        user = new_id()
        seed_faces(clients, user)
        query = bench_query(clients, user, args.queries)
        http = bench_http(env, settings, clients, user, args.queries)
    finally:
        clients.mongo.drop_database(clients.db.name)
        clients.close()
    print(f"database: {settings.mongo_url.rsplit('/', 1)[0]}/ ({'given' if args.mongo else 'SecantusDB in memory'});"
          " 2-core machine shared with other work")
    print(f"raw insert_one of a node document:                  {rates['raw']:8.0f} /s")
    print(f"createNode + event, store (one transaction):         {rates['store']:8.0f} /s  "
          f"{rates['store'] / rates['raw']:.2f}x raw")
    print(f"createNode + event, GraphQL service (parse+execute): {rates['graphql']:8.0f} /s  "
          f"{rates['graphql'] / rates['raw']:.2f}x raw   (goal >= 0.5x)")
    print(f"{args.threads} clients at once: raw {parallel['raw']:6.0f} /s, createNode + event (store) "
          f"{parallel['store']:6.0f} /s  {parallel['store'] / parallel['raw']:.2f}x raw")
    (rp50, rp99), (gp50, gp99) = query["raw"], query["graphql"]
    print(f"500 faces + their images, the two raw finds:         p50 {rp50:6.1f} ms  p99 {rp99:6.1f} ms")
    print(f"500 faces + their images, GraphQL service:           p50 {gp50:6.1f} ms  p99 {gp99:6.1f} ms   "
          f"(goal p50 <= 50 ms; {gp50 / rp50:.1f}x the raw finds)")
    print(f"500 faces + their images, HTTP through the gateway:  p50 {http[0]:6.1f} ms  p99 {http[1]:6.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
