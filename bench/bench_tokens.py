"""Token verification at the gateway (verifications/s on one core) and phone exchange latency.

1. TokenVerifier over the KeyStore's JWKS (the key set cached, as in the gateway): distinct tokens (a full
   RS256 check each), the same token again (the LRU of verified tokens), and the gateway's Authenticator.
   "Before" is the hand-written verifier this replaced (raw `cryptography` check and hand-rolled claims, no
   `typ`, `client_id` or `scope`), kept here as the baseline; "after" is the RFC 9068 verifier (joserfc's
   JWS decoding, Authlib's RFC 9068 claims registry). Both run in this process on the same tokens.
2. POST /mobile/v1/auth/google against the local Google stand-in: the gateway under gunicorn, the stand-in
   as its own process; prints p50/p95/p99 and exchanges/s with one client.
Usage: python -m bench.bench_tokens [--tokens N] [--exchanges N]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import time

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

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
    public = keys.current.public_key
    items = []
    for token in tokens:
        head, payload, sig = token.split(".")
        items.append((f"{head}.{payload}".encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))))
    return rate(lambda item: public.verify(item[1], item[0], padding.PKCS1v15(), hashes.SHA256()), items)


class LegacyVerifier:
    """The verifier before issue 13, verbatim in behaviour: RS256 through `cryptography`, claims by hand,
    an LRU of verified claims. The baseline the RFC 9068 verifier is compared with."""

    def __init__(self, keys, issuer: str, audiences: set[str], cache_size: int = 20000):
        from collections import OrderedDict

        self.public = {k["kid"]: keys.current.public_key for k in keys.public_jwks()["keys"][:1]}
        self.issuer, self.audiences, self.cache_size = issuer, audiences, cache_size
        self.cache: OrderedDict = OrderedDict()

    def verify(self, token: str) -> dict:
        now = time.time()
        cached = self.cache.get(token)
        if cached is not None and cached["exp"] > now:
            return cached
        head, payload, signature = token.split(".")

        def dec(seg):
            return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))

        header = json.loads(dec(head))
        if header.get("alg") != "RS256":
            raise ValueError("alg")
        self.public[header["kid"]].verify(dec(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                                          hashes.SHA256())
        claims = json.loads(dec(payload))
        aud = claims.get("aud")
        if claims.get("iss") != self.issuer or not ({aud} if isinstance(aud, str) else set(aud)) & self.audiences:
            raise ValueError("claims")
        if claims["exp"] <= now or claims.get("nbf", 0) > now + 30 or not claims.get("sub"):
            raise ValueError("time")
        self.cache[token] = claims
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return claims


def breakdown(keys, settings, tokens, rounds: int = 5) -> dict[str, float]:
    """Where a distinct token's time goes: µs per token of each layer, the minimum over interleaved rounds (so a
    load spike from elsewhere hits every layer alike)."""
    from joserfc import jws, jwt

    from runtime.tokens import AccessTokenClaims, TokenVerifier

    verifier = TokenVerifier(keys.public_jwks, settings.public_url, {"pcloud"}, cache_size=1)
    verifier.verify(tokens[0])
    key = next(iter(verifier._keys("").values()))  # noqa: SLF001 - the bench measures the verifier's own key
    registry = AccessTokenClaims(settings.public_url, {"pcloud"}, 30)
    claims = [jwt.decode(t, key, algorithms=["RS256"]).claims for t in tokens]
    public = keys.current.public_key
    raw = []
    for token in tokens:
        head, payload, sig = token.split(".")
        raw.append((f"{head}.{payload}".encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))))
    layers = {
        "rsa": (lambda item: public.verify(item[1], item[0], padding.PKCS1v15(), hashes.SHA256()), raw),
        "jws": (lambda t: jws.deserialize_compact(t, key, algorithms=["RS256"]), tokens),
        "jwt": (lambda t: jwt.decode(t, key, algorithms=["RS256"]), tokens),
        "claims": (registry.validate, claims),
        "verifier": (verifier.verify, tokens),
    }
    best = dict.fromkeys(layers, float("inf"))
    for _ in range(rounds):
        for name, (fn, items) in layers.items():
            best[name] = min(best[name], 1e6 / rate(fn, items))
    return best


def verification(count: int) -> None:
    from gateway.middleware.auth import Authenticator
    from runtime.keys import KeyStore
    from runtime.settings import load_settings
    from runtime.tokens import TokenVerifier, issue_access_token

    settings = load_settings(bench_env())
    keys = KeyStore(settings.data_dir)
    tokens = [issue_access_token(keys, settings, sub=f"user{i}", aud="pcloud")[0] for i in range(count)]
    auds = {"pcloud"}
    before_distinct = rate(LegacyVerifier(keys, settings.public_url, auds, cache_size=1).verify, tokens)
    legacy = LegacyVerifier(keys, settings.public_url, auds, cache_size=count * 2)
    for token in tokens:
        legacy.verify(token)
    before_cached = rate(legacy.verify, tokens, repeat=20)

    cold = TokenVerifier(keys.public_jwks, settings.public_url, auds, cache_size=1)
    cold.verify(tokens[0])  # load the key set once, as a running gateway has
    distinct = rate(cold.verify, tokens)
    warm = TokenVerifier(keys.public_jwks, settings.public_url, auds, cache_size=count * 2)
    for token in tokens:
        warm.verify(token)
    cached = rate(warm.verify, tokens, repeat=20)
    auth = Authenticator(warm)
    environs = [{"HTTP_AUTHORIZATION": f"Bearer {t}", "REQUEST_METHOD": "GET"} for t in tokens]
    gateway_rate = rate(lambda env: auth.identify(env, allow_cookie=False), environs, repeat=20)
    ceiling = raw_rsa_rate(keys, tokens)
    print("load average (1, 5, 15 min) at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"token verification, one thread ({count} tokens, RS256 2048-bit, key set cached):")
    print(f"  (raw RSA-2048 verify alone, the ceiling:       {ceiling:>10,.0f} verifications/s)")
    print("                                                    before       after   after/before")
    print(f"  distinct tokens (full signature + claims check): {before_distinct:>10,.0f}  {distinct:>10,.0f}"
          f"   {distinct / before_distinct:>6.2f}x")
    print(f"  repeated tokens (verified-token LRU hit):        {before_cached:>10,.0f}  {cached:>10,.0f}"
          f"   {cached / before_cached:>6.2f}x")
    print(f"  gateway Authenticator.identify (LRU hit):                    {gateway_rate:>10,.0f} requests/s")
    b = breakdown(keys, settings, tokens[:500])
    print("  where a distinct token's time goes (µs per token, best of 5 interleaved rounds):")
    print(f"    RSA-2048 PKCS#1 v1.5 verify (cryptography)           {b['rsa']:7.1f}")
    print(f"    joserfc JWS compact: base64/JSON, header registry    {b['jws'] - b['rsa']:7.1f}  "
          f"(deserialize_compact {b['jws']:.1f} incl. RSA)")
    print(f"    joserfc jwt.decode on top of it (payload JSON)      {b['jwt'] - b['jws']:7.1f}")
    print(f"    Authlib RFC 9068 claims registry (+ our checks)      {b['claims']:7.1f}")
    print(f"    ours: header pre-check (alg, typ, kid), LRU, Identity {b['verifier'] - b['jwt'] - b['claims']:6.1f}")
    print(f"    whole TokenVerifier.verify                           {b['verifier']:7.1f}  = "
          f"{1e6 / b['verifier']:,.0f}/s; with only the RSA check left: {1e6 / b['rsa']:,.0f}/s (target ≥ 20,000/s)")


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
    parser.add_argument("--no-exchange", action="store_true", help="only the verification figures")
    args = parser.parse_args()
    verification(args.tokens)
    if not args.no_exchange:
        exchange(args.exchanges)


if __name__ == "__main__":
    main()
