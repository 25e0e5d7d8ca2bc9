"""App event processing figures (issue 15), each beside a baseline measured in the same run.

1. latency: a graph mutation (createNode through the graph service, event in its transaction) → the action's
   request received by the app, one event at a time, through the processor process
   (python -m functions.apps.processor); p50 / p99. Baseline: a direct POST to the same app (the HTTP floor).
2. throughput: a burst of N mutations of a type with a no-op trigger → executions done, events/s through one
   processor, against the graph's own mutation rate measured on the same burst (goal ≥ 0.8×).
3. replay: 10,000 past events fed to an app (functions.apps.replay, the planner the live path uses) → events/s,
   with a progress bar; then until all their executions are done, through the processor.
Goals: latency p50 ≤ 50 ms, p99 ≤ 250 ms; throughput ≥ 0.8× the mutation rate.
Usage: python -m bench.bench_events [--latency N] [--burst N] [--replay N] [--mongo URL]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import threading
import time

import requests
import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bench.common import ROOT, bench_env, python
from runtime import events
from runtime.clients import Clients
from runtime.identity import ADMIN_SCOPE, USER_SCOPES, Identity
from runtime.ids import new_id, utcnow
from runtime.settings import load_settings


class NoopApp:
    """Answers every action at once and notes when each execution's request arrived."""

    def __init__(self):
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        req = Request(environ)
        now = time.perf_counter()
        if req.method == "POST":
            body = req.get_json(silent=True) or {}
            subject = ((body.get("event") or {}).get("subject")) or body.get("execution_id")
            with self.cond:
                self.arrived.setdefault(subject, now)
                self.cond.notify_all()
        return Response('{"ok":true}', mimetype="application/json")(environ, start_response)

    def wait_for(self, subject: str, timeout: float = 30.0) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while subject not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.arrived[subject]


def archive(manifest: dict, files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    members = {"pcloud-app.yaml": yaml.safe_dump(manifest), **files}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def install(clients, settings, admin: Identity, app_url: str) -> None:
    from functions.apps.runner import Runner
    from functions.apps.service import AppManager

    manifest = {"name": "bench-noop", "version": "1.0.0", "title": "noop", "namespace": "bench",
                "schema": "schema.graphql", "runtime": {"url": app_url},
                "actions": {"noop": {"path": "/noop", "timeout_s": 10, "concurrency": 32}},
                "triggers": [{"name": "on-item", "event": "graph.node.created", "where": {"node_type": "bench.Item"},
                              "run": "noop", "params": {"id": "{{ event.subject }}"}}]}
    manager = AppManager(clients.db, settings)
    manager.submit(admin, archive(manifest, {"schema.graphql": "type Item @node { n: Int }\n"}))
    manager.approve(admin, "bench-noop")
    Runner(clients.db, settings).tick()
    assert clients.db.apps.find_one({"_id": "bench-noop"})["state"] == "active"


def mutate(clients, ident: Identity, n: int) -> str:
    from functions.graph import service as graph

    out = graph.run(clients.db, clients.mongo, ident,
                    {"query": "mutation($d: JSON!) { createNode(type: \"bench.Item\", data: $d) { id } }",
                     "variables": {"d": {"n": n}}})
    if out.get("errors"):
        raise SystemExit(f"mutation failed: {out['errors']}")
    return out["data"]["createNode"]["id"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_latency(clients, ident, app: NoopApp, count: int) -> None:
    floor = []
    for i in range(50):
        started = time.perf_counter()
        requests.post(f"{app.url}/noop", json={"execution_id": f"floor-{i}"}, timeout=5)
        floor.append((app.arrived[f"floor-{i}"] - started) * 1000)
    lat, after_commit = [], []
    for i in range(count):
        started = time.perf_counter()
        node_id = mutate(clients, ident, i)
        committed = time.perf_counter()
        arrived = app.wait_for(node_id)
        if arrived is None:
            raise SystemExit(f"event {i} never reached the app")
        lat.append((arrived - started) * 1000)
        after_commit.append(max(arrived - committed, 0.0) * 1000)
    print(f"latency   mutation → action request: p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 0.99):.1f} ms "
          f"({count} events, one at a time; goal p50 ≤ 50, p99 ≤ 250)")
    print(f"          of which after the mutation returned (commit → request): p50 "
          f"{statistics.median(after_commit):.1f} ms, p99 {pct(after_commit, 0.99):.1f} ms")
    print(f"          baseline direct POST to the app: p50 {statistics.median(floor):.2f} ms, "
          f"p99 {pct(floor, 0.99):.2f} ms")


def bench_throughput(clients, ident, app: NoopApp, count: int) -> None:
    start = time.perf_counter()
    ids = [mutate(clients, ident, i) for i in range(count)]
    mutated = time.perf_counter()
    for node_id in ids:
        if app.wait_for(node_id, timeout=120) is None:
            raise SystemExit("a burst event never reached the app")
    while clients.db.executions.count_documents({"app": "bench-noop", "state": {"$ne": "done"}}):
        time.sleep(0.05)
    done = time.perf_counter()
    mutation_rate = count / (mutated - start)
    processed_rate = count / (done - start)
    print(f"throughput graph mutations {mutation_rate:.0f}/s; processor (event → no-op action done) "
          f"{processed_rate:.0f} events/s over the same burst of {count} = {processed_rate / mutation_rate:.2f}× "
          f"(goal ≥ 0.8×; last action done {1000 * (done - mutated):.0f} ms after the last mutation)")


def bench_replay(clients, settings, owner: str, count: int) -> None:
    from tqdm import tqdm

    from functions.apps import replay
    from runtime.mongo import transaction

    started = time.perf_counter()
    for first in range(0, count, 200):
        def batch(session, first=first):
            for i in range(first, min(first + 200, count)):
                events.append(clients.db, owner=owner, type="graph.node.created", subject=f"old-{i}",
                              node_type="bench.Item", data={"node": {"id": f"old-{i}"}, "changed": ["n"],
                                                            "search": {}}, session=session)
        transaction(clients.mongo, batch)
    appended = time.perf_counter() - started
    doc = replay.start(clients.db, "bench-noop", owner)
    worker = threading.Thread(target=replay.work_one, args=(clients.db,), daemon=True)
    t0 = time.perf_counter()
    worker.start()
    with tqdm(total=count, desc="replay", unit="ev", file=sys.stdout) as bar:
        while True:
            now = replay.get(clients.db, doc["_id"], owner)
            bar.n = now["done"]
            bar.refresh()
            if now["state"] == "done":
                break
            time.sleep(0.1)
    fed = time.perf_counter() - t0
    while clients.db.executions.count_documents({"app": "bench-noop", "state": {"$ne": "done"}}):
        time.sleep(0.1)
    ran = time.perf_counter() - t0
    print(f"replay    {count} past events fed (planned + executions inserted) at {count / fed:.0f} events/s; "
          f"all executions done at {count / ran:.0f} events/s through one processor")
    print(f"          baseline: appending those events (200 per transaction) ran at {count / appended:.0f}/s")


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--replay", type=int, default=10_000)
    parser.add_argument("--mongo", help="another MongoDB-wire server, e.g. mongodb://127.0.0.1:27018/")
    args = parser.parse_args()
    env = bench_env()
    if args.mongo:
        env["PCLOUD_MONGO_URL"] = args.mongo.rstrip("/") + "/" + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
    settings = load_settings(env)
    clients = Clients(settings)
    clients.ensure_indexes()
    admin_id = new_id()
    clients.db.users.insert_one({"_id": admin_id, "email": "bench@example.test", "name": "Bench", "role": "admin",
                                 "identities": [], "seq": 0, "journal_floor": 0, "created_at": utcnow()})
    admin = Identity(user_id=admin_id, scopes=(*USER_SCOPES, ADMIN_SCOPE))
    app = NoopApp()
    proc = None
    try:
        install(clients, settings, admin, app.url)
        proc = subprocess.Popen([python(), "-m", "functions.apps.processor"], cwd=ROOT, env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mutate(clients, admin, -1)  # warm: schema built, processor woken once
        time.sleep(1.0)
        bench_latency(clients, admin, app, args.latency)
        bench_throughput(clients, admin, app, args.burst)
        bench_replay(clients, settings, admin_id, args.replay)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        app.server.shutdown()
        clients.mongo.drop_database(clients.db.name)
        clients.close()


if __name__ == "__main__":
    main()
