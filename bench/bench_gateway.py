"""Gateway overhead: a trivial function called directly vs through the gateway with auth + rate limit.

Both run under the same gunicorn settings; load comes from wrk (a C load generator) on loopback.
Prints requests/s, p50 and p99 for each and the ratio. Usage: python -m bench.bench_gateway [--seconds N]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess

from bench.common import bench_env, free_port, gunicorn, start_process

GUNICORN_ARGS = ["-w", "2", "-k", "gthread", "--threads", "4", "--keep-alive", "5"]


def wrk(url: str, seconds: int, token: str, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-H",
         f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": _ms(lat["50"]), "p99_ms": _ms(lat["99"]), "errors": int(non2xx.group(1)) if non2xx
            else 0}


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    env = bench_env()
    from runtime.clients import Clients
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    settings = load_settings(env)
    clients = Clients(settings)
    token, _ = issue_access_token(clients.keys, settings, sub="bench-user", aud="pcloud")

    direct_port = free_port()
    direct = start_process([gunicorn(), *GUNICORN_ARGS, "-b", f"127.0.0.1:{direct_port}",
                            'gateway.function_server:make("echo")'], env,
                           ready_url=f"http://127.0.0.1:{direct_port}/echo/v1/ping")
    gw = start_process([gunicorn(), *GUNICORN_ARGS, "-b", settings.bind, "gateway.wsgi:app"], env,
                       ready_url=f"{settings.public_url}/healthz")
    try:
        wrk(f"http://127.0.0.1:{direct_port}/echo/v1/ping", 2, token, args.connections)  # warm up
        wrk(f"{settings.public_url}/echo/v1/ping", 2, token, args.connections)
        rounds = {"a": [], "b": []}
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits both sides alike
            rounds["a"].append(wrk(f"http://127.0.0.1:{direct_port}/echo/v1/ping", args.seconds, token,
                                   args.connections))
            rounds["b"].append(wrk(f"{settings.public_url}/echo/v1/ping", args.seconds, token, args.connections))
        a, b = _median(rounds["a"]), _median(rounds["b"])
    finally:
        direct.terminate()
        gw.terminate()
        direct.wait(10)
        gw.wait(10)
        clients.mongo.drop_database(clients.db.name)
    print(f"gunicorn {' '.join(GUNICORN_ARGS)}; wrk 1 thread, {args.connections} connections; "
          f"{args.rounds} interleaved rounds of {args.seconds}s each, medians")
    print(f"(a) direct function      : {a['rps']:9.0f} req/s  p50 {a['p50_ms']:.2f} ms  p99 {a['p99_ms']:.2f} ms"
          f"  non-2xx {a['errors']}")
    print(f"(b) gateway+auth+ratelim : {b['rps']:9.0f} req/s  p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms"
          f"  non-2xx {b['errors']}")
    print(f"throughput ratio (b)/(a) : {b['rps'] / a['rps']:.3f}   (target >= 0.85)")
    print(f"added p50                : {b['p50_ms'] - a['p50_ms']:+.3f} ms (target <= 0.3 ms)")


if __name__ == "__main__":
    main()
