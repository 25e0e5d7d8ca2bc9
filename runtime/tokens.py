"""Access tokens: issuing them and verifying them strictly and fast at the gateway."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from runtime.errors import Unauthorized
from runtime.ids import new_id

ALLOWED_ALGS = ["RS256"]


def issue_access_token(keys, settings, sub: str, aud: str, extra: dict | None = None) -> tuple[str, int]:
    now = int(time.time())
    lifetime = min(settings.access_token_seconds, 900)
    claims = {"iss": settings.public_url, "sub": sub, "aud": aud, "iat": now, "nbf": now,
              "exp": now + lifetime, "jti": new_id(), **(extra or {})}
    return keys.sign(claims, {"typ": "at+jwt"}), lifetime


def jwks_from_url(url: str, timeout: float = 5.0) -> Callable[[], dict]:
    """A JWKS source for a gateway deployed apart from the SSO function."""

    def fetch() -> dict:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
        return resp.json()

    return fetch


class TokenVerifier:
    """Verifies RS256 JWTs against a cached key set; refreshes it on an unknown kid (rate-limited).

    Verified tokens are remembered (LRU) until they expire, so a busy client costs one RSA check per token.
    """

    def __init__(self, jwks_source: Callable[[], dict], issuer: str, audiences: Callable[[], set[str]] | set[str],
                 cache_size: int = 20000, leeway: int = 30, refresh_interval: float = 10.0):
        self._source = jwks_source
        self.issuer = issuer
        self._audiences = audiences if callable(audiences) else (lambda: audiences)
        self._keyset: dict | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cache_size = cache_size
        self.leeway = leeway
        self.refresh_interval = refresh_interval

    def _keys(self, kid: str) -> dict:
        """kid → public key; the key set is fetched again when a token names a kid we have not seen."""
        with self._lock:
            stale = self._keyset is None or (kid not in self._keyset and
                                             time.monotonic() - self._fetched_at > self.refresh_interval)
            if stale:
                keyset = KeySet.import_key_set(self._source())
                self._keyset = {k.kid: k.public_key for k in keyset.keys
                                if k.key_type == "RSA" and k.kid}
                self._fetched_at = time.monotonic()
            return self._keyset

    def verify(self, token: str) -> dict:
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached["exp"] > now:
                return cached
            self._cache.pop(token, None)
        claims = self._verify_uncached(token, now)
        with self._lock:
            self._cache[token] = claims
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return claims

    def _verify_uncached(self, token: str, now: float) -> dict:
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise Unauthorized("malformed token", code="invalid_token")
        head, payload, signature = token.split(".")
        try:
            header = json.loads(_b64decode(head))
        except ValueError:
            raise Unauthorized("malformed token header", code="invalid_token") from None
        if not isinstance(header, dict) or header.get("alg") not in ALLOWED_ALGS:
            raise Unauthorized("token algorithm not allowed", code="invalid_token")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("token has no key id", code="invalid_token")
        try:
            key = self._keys(kid).get(kid)
        except (requests.RequestException, ValueError, JoseError) as exc:
            raise Unauthorized(f"signing keys unavailable: {exc.__class__.__name__}", code="invalid_token") from None
        if key is None:
            raise Unauthorized("token signed by an unknown key", code="invalid_token")
        try:
            key.verify(_b64decode(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_b64decode(payload))
        except InvalidSignature:
            raise Unauthorized("token rejected: bad signature", code="invalid_token") from None
        except ValueError:
            raise Unauthorized("token rejected: malformed", code="invalid_token") from None
        if not isinstance(claims, dict):
            raise Unauthorized("token rejected: claims are not an object", code="invalid_token")
        if claims.get("iss") != self.issuer:
            raise Unauthorized("token issuer mismatch", code="invalid_token")
        aud = claims.get("aud")
        auds = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
        if not auds & self._audiences():
            raise Unauthorized("token audience not accepted", code="invalid_token")
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if not isinstance(exp, (int, float)) or exp <= now:
            raise Unauthorized("token expired", code="token_expired")
        if not isinstance(nbf, (int, float)) or nbf > now + self.leeway:
            raise Unauthorized("token not yet valid", code="invalid_token")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("token has no subject", code="invalid_token")
        return claims


def _b64decode(segment: str) -> bytes:
    if not _B64URL.match(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
