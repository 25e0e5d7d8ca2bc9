"""Commit on phone A → sync push received for phone B, through the gateway, with per-stage timestamps.

The gateway runs in this process on loopback (real HTTP), the relay (`python -m push.relay`) and one worker
(`python -m runtime.worker push`) as their own processes, as `make run` starts them; the FCM stand-in runs in
this process and records when each request arrived. K users with two phones each take turns, so each user
commits at most once per `--gap` seconds (≥ 2 s: CONTRACT §6 allows one sync tickle per device per 2 s, and a
commit inside that window waits for it by contract, which is not what this measures).

Each commit's stages come from the records the pipeline keeps anyway (no instrumentation in the code paths):
outbox `created_at` (the commit's transaction) → `claimed_at` (relay pickup) → delivery `created_at` (fan-out
and per-device rule) → `next_attempt_at` (the slot the rule gave) → rq `enqueued_at` → `started_at` (dequeue)
→ delivery `sent_at` (the worker's send began) → stand-in arrival. The baseline is the commit request's own
round trip in the same run. Figures only; nothing here asserts timings.

With `--shared`, phone B is another user's: each owner commits into a folder shared with that user read-write
(issue 19), so the push goes to a sharee's phone (push/sharing.py finds them) — the same pipeline plus the
relay's share lookup.

    python -m bench.bench_sync_push [--commits N] [--users K] [--gap S] [--shared]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.common import ROOT, bench_env, new_bench_user, python

STAGES = [("outbox write → commit answered (rest of the transaction)", "created", "answered"),
          ("commit answered → relay pickup", "answered", "claimed"),
          ("relay pickup → delivery recorded (fan-out, per-device rule)", "claimed", "fanned"),
          ("delivery recorded → its slot (per-device rule wait)", "fanned", "slot"),
          ("slot → rq enqueue", "slot", "enqueued"),
          ("rq enqueue → dequeue", "enqueued", "started"),
          ("dequeue → send begins (owed check, gate)", "started", "sending"),
          ("send begins → stand-in receives", "sending", "received")]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--gap", type=float, default=2.5, help="seconds between two commits of one user")
    parser.add_argument("--mongo", help="another MongoDB-wire server, e.g. mongodb://127.0.0.1:27018/")
    parser.add_argument("--shared", action="store_true", help="phone B is a sharee's; commits go into the share")
    args, _ = parser.parse_known_args(argv)

    from rq.job import Job

    from gateway.wsgi import create_gateway
    from push import registry
    from runtime.clients import Clients, forget
    from runtime.cursor import decode_cursor
    from runtime.ids import as_utc
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token
    from tests.conftest import LiveServer
    from tests.fakes.fcm import FakeFCM

    fake = FakeFCM().start()
    env = bench_env(PCLOUD_PUSH_BACKEND="fcm", PCLOUD_FCM_ENDPOINT=fake.url, PCLOUD_FCM_TOKEN_URI=fake.token_uri)
    if args.mongo:
        env["PCLOUD_MONGO_URL"] = args.mongo.rstrip("/") + "/" + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
    env["PCLOUD_FCM_CREDENTIALS"] = str(fake.make_service_account(Path(env["PCLOUD_DATA_DIR"]) / "sa.json"))
    settings = load_settings(env)
    clients = Clients(settings)
    clients.ensure_indexes()
    db = clients.db
    procs = [subprocess.Popen([python(), "-m", module, *extra], cwd=ROOT, env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for module, extra in (("push.relay", []), ("runtime.worker", ["push"]))]
    server = LiveServer(create_gateway(settings), port=int(settings.bind.rsplit(":", 1)[1]))
    users = []
    for i in range(args.users):
        owner = new_bench_user(db, f"Bench {i}")
        phone_a = registry.register_phone(db, owner, "phone A", "android", f"token-a-{owner}")
        b_user = new_bench_user(db, f"Sharee {i}") if args.shared else owner
        phone_b = registry.register_phone(db, b_user, "phone B", "android", f"token-b-{owner}")
        http = requests.Session()
        token = issue_access_token(clients.keys, settings, owner, "pcloud")[0]
        http.headers.update({"Authorization": f"Bearer {token}", "X-PCloud-Device-Id": phone_a})
        root = http.get(f"{server.url}/files/v1/root", timeout=30).json()["id"]
        if args.shared:
            root = http.post(f"{server.url}/files/v1/folders", json={"parent_id": root, "name": "Family"},
                             timeout=30).json()["id"]
            http.post(f"{server.url}/files/v1/nodes/{root}/shares", json={"user_id": b_user, "role": "write"},
                      timeout=30).raise_for_status()
        users.append({"owner": owner, "b": phone_b, "token_b": f"token-b-{owner}", "http": http, "root": root,
                      "last": 0.0, "n": 0})
    content = b"the same bytes each time: after the first upload no block is missing"
    block = {"hash": hashlib.sha256(content).hexdigest(), "size": len(content)}

    def commit(user) -> tuple[float, float, dict]:
        user["n"] += 1
        body = {"parent_id": user["root"], "name": f"note-{user['n']}.txt", "size": len(content), "blocks": [block]}
        upload = user["http"].post(f"{server.url}/files/v1/uploads", json=body, timeout=30).json()
        for missing in upload["missing"]:
            requests.request(missing["method"], missing["url"], headers=missing.get("headers") or {}, data=content,
                             timeout=30).raise_for_status()
        t0 = time.time()
        answer = user["http"].post(f"{server.url}/files/v1/uploads/{upload['upload_id']}/commit", timeout=30)
        t1 = time.time()
        answer.raise_for_status()
        return t0, t1, answer.json()

    def push_for(user, seq: int, since: float):
        def find(f):
            with f._lock:
                for m in reversed(f.messages):
                    if m.at < since:
                        break
                    # a sharee's tickle carries their own journal position, not the owner's
                    if m.token == user["token_b"] and (
                            args.shared or decode_cursor(m.message["data"]["cursor"]) >= seq):
                        return m
            return None
        fake.wait_for(lambda f: find(f) is not None, timeout=15)
        return find(fake)

    def stages(user, node_id: str, received: float) -> dict:
        evts = list(db.outbox.find({"payload.node_id": node_id}))
        out = {"created": min(as_utc(e["created_at"]).timestamp() for e in evts),
               "claimed": min(as_utc(e["claimed_at"]).timestamp() for e in evts if e.get("claimed_at")),
               "received": received}
        ids = [e["_id"] for e in evts]
        sent = [d for d in db.push_deliveries.find({"event_id": {"$in": ids}, "device_id": user["b"]})
                if d.get("sent_at")]
        if sent:
            d = min(sent, key=lambda d: d["sent_at"])
            out.update(fanned=as_utc(d["created_at"]).timestamp(), slot=as_utc(d["next_attempt_at"]).timestamp(),
                       sending=as_utc(d["sent_at"]).timestamp())
            job = Job.fetch(d["job"], connection=clients.redis) if d.get("job") else None
            if job is not None and job.enqueued_at and job.started_at:
                out.update(enqueued=as_utc(job.enqueued_at).timestamp(), started=as_utc(job.started_at).timestamp())
        return out

    rows, round_trips, lost = [], [], 0
    try:
        for user in users:  # warm-up: worker imports, OAuth token, first block upload
            t0, _, node = commit(user)
            seq = db.nodes.find_one({"_id": node["id"]}, {"seq": 1})["seq"]
            if push_for(user, seq, t0) is None:
                raise SystemExit("the warm-up push never arrived: relay or worker not running?")
            user["last"] = time.time()
        for i in range(args.commits):
            user = users[i % len(users)]
            time.sleep(max(0.0, user["last"] + args.gap - time.time()))
            t0, t1, node = commit(user)
            round_trips.append((t1 - t0) * 1000)
            seq = db.nodes.find_one({"_id": node["id"]}, {"seq": 1})["seq"]
            message = push_for(user, seq, t0)
            if message is None:
                lost += 1
                continue
            user["last"] = message.at  # the device's 2 s window starts at its last tickle
            row = stages(user, node["id"], message.at)
            row["answered"] = t1
            row["after_answer"] = (message.at - t1) * 1000
            row["total"] = (message.at - t0) * 1000
            rows.append(row)
    finally:
        server.stop()
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        fake.stop()
        forget(settings)
        clients.mongo.drop_database(db.name)
        clients.close()

    totals = [r["total"] for r in rows]
    base50, base99 = statistics.median(round_trips), pct(round_trips, 0.99)
    print("load average (1, 5, 15 min) at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    whose = "a sharee's phone B (a folder shared with them)" if args.shared else "phone B"
    print(f"{len(rows)} commits by {args.users} users (each {args.gap} s after its last tickle), {whose}: push "
          f"at the FCM stand-in; {lost} not received within 15 s")
    print(f"commit on phone A → sync push received for phone B: p50 {statistics.median(totals):7.1f} ms   "
          f"p99 {pct(totals, 0.99):7.1f} ms   max {max(totals):7.1f} ms   (target p50 ≤ 100, p99 ≤ 300)")
    after = [r["after_answer"] for r in rows]
    print(f"  of which after the commit was answered (the push pipeline): p50 {statistics.median(after):7.1f} ms   "
          f"p99 {pct(after, 0.99):7.1f} ms")
    print(f"baseline: the commit request's own round trip:        p50 {base50:7.1f} ms   p99 {base99:7.1f} ms")
    print(f"ratio push latency / commit round trip:               p50 {statistics.median(totals) / base50:7.2f}x  "
          f"p99 {pct(totals, 0.99) / base99:7.2f}x")
    print("per stage (ms)                                                  p50       p99       max")
    for label, a, b in STAGES:
        values = [(r[b] - r[a]) * 1000 for r in rows if a in r and b in r]
        if values:
            print(f"  {label:<58} {statistics.median(values):8.1f}  {pct(values, 0.99):8.1f}  {max(values):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
