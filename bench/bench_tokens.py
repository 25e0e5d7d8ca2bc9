"""Token verification at the gateway (verifications/s on one core) and phone exchange latency.

1. TokenVerifier over the KeyStore's JWKS (the key set cached, as in the gateway): distinct tokens (a full
   RS256 check each), the same token again (the LRU of verified tokens), and the gateway's Authenticator.
2. POST /mobile/v1/auth/google against the local Google stand-in: the gateway under gunicorn, the stand-in
   as its own process; prints p50/p95/p99 and exchanges/s with one client.
Usage: python -m bench.bench_tokens [--tokens N] [--exchanges N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from bench.common import bench_env, free_port, gunicorn, python, start_process

GUNICORN_ARGS = ["-w", "2", "-k", "gthread", "--threads", "4"]


def rate(fn, items, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return len(items) * repeat / (time.perf_counter() - started)


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """The gateway builds itself on its first request (slow on a loaded machine): wait for it patiently."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=10).raise_for_status()
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def raw_rsa_rate(keys, tokens) -> float:
    """The ceiling: only the RSA-2048 signature check through `cryptography`, nothing else."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    public = keys.current.public_key
    items = []
    for token in tokens:
        head, payload, sig = token.split(".")
        items.append((f"{head}.{payload}".encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))))
    return rate(lambda item: public.verify(item[1], item[0], padding.PKCS1v15(), hashes.SHA256()), items)


def verification(count: int) -> None:
    from gateway.middleware.auth import Authenticator
    from runtime.keys import KeyStore
    from runtime.settings import load_settings
    from runtime.tokens import TokenVerifier, issue_access_token

    settings = load_settings(bench_env())
    keys = KeyStore(settings.data_dir)
    tokens = [issue_access_token(keys, settings, sub=f"user{i}", aud="pcloud")[0] for i in range(count)]
    cold = TokenVerifier(keys.public_jwks, settings.public_url, {"pcloud"}, cache_size=1)
    cold.verify(tokens[0])  # load the key set once, as a running gateway has
    distinct = rate(cold.verify, tokens)
    warm = TokenVerifier(keys.public_jwks, settings.public_url, {"pcloud"}, cache_size=count * 2)
    for token in tokens:
        warm.verify(token)
    cached = rate(warm.verify, tokens, repeat=20)
    auth = Authenticator(warm)
    environs = [{"HTTP_AUTHORIZATION": f"Bearer {t}", "REQUEST_METHOD": "GET"} for t in tokens]
    gateway_rate = rate(lambda env: auth.identify(env, allow_cookie=False), environs, repeat=20)
    ceiling = raw_rsa_rate(keys, tokens)
    print(f"token verification, one thread ({count} tokens, RS256 2048-bit, key set cached):")
    print(f"  distinct tokens (full signature + claims check): {distinct:>10,.0f} verifications/s")
    print(f"  (raw RSA-2048 verify alone, the ceiling:       {ceiling:>10,.0f} verifications/s)")
    print(f"  repeated tokens (verified-token LRU hit):        {cached:>10,.0f} verifications/s")
    print(f"  gateway Authenticator.identify (LRU hit):        {gateway_rate:>10,.0f} requests/s")


def exchange(count: int) -> None:
    google_port, gateway_port = free_port(), free_port()
    google_url = f"http://127.0.0.1:{google_port}"
    env = bench_env(PCLOUD_BIND=f"127.0.0.1:{gateway_port}", PCLOUD_PUBLIC_URL=f"http://127.0.0.1:{gateway_port}",
                    PCLOUD_GOOGLE_CLIENT_ID="bench-web", PCLOUD_GOOGLE_CLIENT_SECRET="bench-secret",
                    PCLOUD_GOOGLE_DISCOVERY_URL=f"{google_url}/.well-known/openid-configuration")
    google = start_process([python(), "-m", "devtools.google", "--port", str(google_port)], env,
                           ready_url=f"{google_url}/.well-known/openid-configuration")
    gateway = start_process([gunicorn(), *GUNICORN_ARGS, "-b", f"127.0.0.1:{gateway_port}", "gateway.wsgi:app"], env)
    try:
        wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
        http = requests.Session()
        tokens = [http.post(f"{google_url}/_fake/id_token", json={"email": f"phone{i % 50}@bench.test",
                                                                   "aud": "bench-web"}, timeout=10).json()["id_token"]
                  for i in range(count + 10)]
        url = f"http://127.0.0.1:{gateway_port}/mobile/v1/auth/google"
        for token in tokens[:10]:  # warm up: discovery, JWKS, both workers, users created
            http.post(url, json={"id_token": token}, timeout=10).raise_for_status()
        latencies = []
        started = time.perf_counter()
        for token in tokens[10:]:
            t0 = time.perf_counter()
            resp = http.post(url, json={"id_token": token}, timeout=10)
            latencies.append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
        elapsed = time.perf_counter() - started
        q = statistics.quantiles(latencies, n=100)
        print(f"mobile exchange POST /mobile/v1/auth/google against the local Google stand-in ({count} calls, "
              "one client, gunicorn 2 workers):")
        print(f"  p50 {q[49]:.1f} ms   p95 {q[94]:.1f} ms   p99 {q[98]:.1f} ms   {count / elapsed:.0f} exchanges/s")
    finally:
        for proc in (gateway, google):
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--exchanges", type=int, default=300)
    args = parser.parse_args()
    verification(args.tokens)
    exchange(args.exchanges)


if __name__ == "__main__":
    main()
