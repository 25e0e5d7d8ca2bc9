"""Memory of every `make run` process (Procfile under supervisord), idle and while a push burst drains.

The stack runs as `make run` runs it (runtime.supervise → supervisord → every Procfile line) on an isolated
database, Redis prefix, RabbitMQ vhost and data dir, with PCLOUD_PUSH_BACKEND=fcm against the FCM stand-in (its
own process, not counted). Per program: RSS of its whole process tree (a gunicorn master and its workers) and
PSS (shared pages split between the processes sharing them, so the total is what the stack really holds).
SecantusDB, Redis and RabbitMQ are services, not `make run` processes, and are not counted. The baseline is a
bare `python -c 'import time; time.sleep(…)'` measured in the same run: the floor of any Python process.

    python -m bench.bench_footprint [--settle S] [--events N] [--phones N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.common import ROOT, bench_env, python

GOAL_MIB = 500


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            kids += [int(k) for k in text]
    except OSError:
        pass
    return kids


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def programs(supervisor_pid: int, conf: Path) -> dict[str, int]:
    """program name → pid, from supervisorctl."""
    answer = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), "status"],
                            capture_output=True, text=True, timeout=30).stdout
    found = {}
    for line in answer.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            found[parts[0]] = int(parts[3].rstrip(","))
    return found


def measure(pids: dict[str, int]) -> dict[str, dict]:
    out = {}
    for name, pid in pids.items():
        members = tree(pid)
        out[name] = {"rss": sum(_status(p, "VmRSS") for p in members) / 1024,
                     "pss": sum(_pss(p) for p in members) / 1024, "procs": len(members)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after the gateway answers")
    parser.add_argument("--events", type=int, default=100, help="conflict pushes to every phone in the burst")
    parser.add_argument("--phones", type=int, default=100)
    parser.add_argument("--procfile", default="Procfile")
    parser.add_argument("--mongo", help="another MongoDB-wire server, e.g. mongodb://127.0.0.1:27018/")
    args, _ = parser.parse_known_args(argv)

    from tests.conftest import drop_vhost, make_vhost

    tmp = Path(tempfile.mkdtemp(prefix="pcloud-bench-footprint-"))
    sa = tmp / "sa.json"
    fake = subprocess.Popen([python(), "-m", "tests.fakes.fcm", "--delay-ms", "20", "--no-record",
                             "--service-account", str(sa)], cwd=ROOT, stdout=subprocess.PIPE)
    url = json.loads(fake.stdout.readline())["url"]
    vhost = f"bench-footprint-{uuid.uuid4().hex[:8]}"
    env = bench_env(PCLOUD_PUSH_BACKEND="fcm", PCLOUD_FCM_CREDENTIALS=str(sa), PCLOUD_FCM_ENDPOINT=url,
                    PCLOUD_AMQP_URL=make_vhost(vhost), PCLOUD_DEMO_SIGNIN="false", PCLOUD_LOG_LEVEL="WARNING")
    if args.mongo:
        env["PCLOUD_MONGO_URL"] = args.mongo.rstrip("/") + "/" + env["PCLOUD_MONGO_URL"].rsplit("/", 1)[1]
    full_env = {**os.environ, **env}
    conf = Path(subprocess.run([python(), "-m", "runtime.supervise", "--procfile", args.procfile, "--state-dir",
                                str(tmp / "supervisor"), "--log-dir", str(tmp / "logs"), "--root", ROOT],
                               cwd=ROOT, env=full_env, capture_output=True, text=True, check=True).stdout.strip())
    bare = subprocess.Popen([python(), "-c", "import time; time.sleep(3600)"])
    supervisor = subprocess.Popen([str(Path(sys.executable).parent / "supervisord"), "-n", "-c", str(conf)],
                                  cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
    from runtime.clients import Clients
    from runtime.settings import load_settings

    clients = Clients(load_settings(env))
    try:
        gateway = f"http://{env['PCLOUD_BIND']}/healthz"
        deadline = time.monotonic() + 180
        while True:
            try:
                requests.get(gateway, timeout=10).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit("the gateway never answered /healthz") from None
                time.sleep(0.5)
        requests.get(f"http://{env['PCLOUD_BIND']}/readyz", timeout=30)
        time.sleep(args.settle)
        pids = programs(supervisor.pid, conf)
        idle = measure(pids)
        bare_rss, bare_pss = _status(bare.pid, "VmRSS") / 1024, _pss(bare.pid) / 1024
        supervisord = {"rss": _status(supervisor.pid, "VmRSS") / 1024, "pss": _pss(supervisor.pid) / 1024}

        # a push burst through the running relay and worker
        from push import registry
        from runtime import events

        for i in range(args.phones):
            registry.register_phone(clients.db, "footprint-user", f"p{i}", "android", f"footprint-token-{i}")
        peak = {name: dict(v) for name, v in idle.items()}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for name, v in measure(pids).items():
                    for key in ("rss", "pss"):
                        peak[name][key] = max(peak[name][key], v[key])
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        events.emit_many(clients.db, [("conflict.created", "footprint-user", {"conflict_id": f"c{i}", "node_id": "n"})
                                      for i in range(args.events)])
        total = args.events * args.phones
        deadline = time.monotonic() + 600
        while clients.db.push_deliveries.count_documents({"status": "sent"}) < total and time.monotonic() < deadline:
            time.sleep(0.5)
        drained = time.perf_counter() - started
        sent = clients.db.push_deliveries.count_documents({"status": "sent"})
        stop.set()
        sampler.join()
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        try:
            supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)
        for proc in (bare, fake):
            proc.kill()
            proc.wait()
        clients.mongo.drop_database(clients.db.name)
        clients.close()
        drop_vhost(vhost)

    print("load average (1, 5, 15 min) at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"every Procfile process under supervisord; MiB; idle = {args.settle:.0f} s after the gateway answered; "
          f"burst = {total:,} pushes ({args.events} events x {args.phones} phones), {sent:,} sent in {drained:.1f} s")
    print(f"  {'process':<14}{'procs':>6}{'idle RSS':>10}{'idle PSS':>10}{'burst RSS':>11}{'burst PSS':>11}")
    for name in sorted(idle, key=lambda n: -idle[n]["pss"]):
        i, p = idle[name], peak[name]
        print(f"  {name:<14}{i['procs']:>6}{i['rss']:>10.1f}{i['pss']:>10.1f}{p['rss']:>11.1f}{p['pss']:>11.1f}")
    print(f"  {'supervisord':<14}{1:>6}{supervisord['rss']:>10.1f}{supervisord['pss']:>10.1f}")
    idle_rss = sum(v["rss"] for v in idle.values()) + supervisord["rss"]
    idle_pss = sum(v["pss"] for v in idle.values()) + supervisord["pss"]
    peak_pss = sum(v["pss"] for v in peak.values()) + supervisord["pss"]
    procs = sum(v["procs"] for v in idle.values()) + 1
    print(f"  whole stack without SecantusDB/Redis/RabbitMQ: idle RSS {idle_rss:.0f} MiB, idle PSS {idle_pss:.0f} MiB, "
          f"burst PSS (per-process peaks) {peak_pss:.0f} MiB  (goal idle ≤ {GOAL_MIB} MiB)")
    print(f"  baseline: a bare python process RSS {bare_rss:.1f} MiB, PSS {bare_pss:.1f} MiB; "
          f"{procs} processes x bare PSS = {procs * bare_pss:.0f} MiB; stack idle PSS / that = "
          f"{idle_pss / max(1.0, procs * bare_pss):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
