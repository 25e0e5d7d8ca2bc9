"""Verifying that a request really is PCloud invoking this app for one execution."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from pcloud_sdk.client import PCloud

ACCESS_TYPS = {"at+jwt", "application/at+jwt"}


class InvalidInvocation(Exception):
    """Not a valid invocation for this app; answer 401 (PCloud itself never sends one)."""


@dataclass
class Invocation:
    execution_id: str
    action: str
    params: dict
    user: dict
    settings: dict
    api_url: str
    token: str
    claims: dict
    event: dict | None = None
    pcloud: PCloud = field(init=False, repr=False)

    def __post_init__(self):
        self.pcloud = PCloud(self.api_url, self.token)


class Verifier:
    """Checks invocation tokens against PCloud's published keys (fetched from `api_url`, cached, refreshed on an
    unknown key id at most every 10 s)."""

    def __init__(self, api_url: str, app: str, timeout: float = 10.0, leeway: int = 30):
        self.api_url = api_url.rstrip("/")
        self.app = app
        self.timeout = timeout
        self.leeway = leeway
        self._keys: KeySet | None = None
        self._issuer: str | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _load(self, force: bool = False) -> tuple[KeySet, str]:
        with self._lock:
            if self._keys is None or (force and time.monotonic() - self._fetched > 10):
                conf = requests.get(f"{self.api_url}/.well-known/openid-configuration", timeout=self.timeout)
                conf.raise_for_status()
                jwks = requests.get(f"{self.api_url}/auth/jwks.json", timeout=self.timeout)
                jwks.raise_for_status()
                self._keys, self._issuer = KeySet.import_key_set(jwks.json()), conf.json()["issuer"]
                self._fetched = time.monotonic()
            return self._keys, self._issuer

    def claims(self, token: str) -> dict:
        keys, issuer = self._load()
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=["RS256"])
            except (ValueError, JoseError) as exc:
                if "kid" not in str(exc).lower() and "key" not in str(exc).lower():
                    raise
                keys, issuer = self._load(force=True)
                decoded = jwt.decode(token, keys, algorithms=["RS256"])
        except (ValueError, JoseError) as exc:
            raise InvalidInvocation(f"bad token: {exc}") from None
        if str(decoded.header.get("typ", "")).lower() not in ACCESS_TYPS:
            raise InvalidInvocation("not an access token (typ)")
        claims = decoded.claims
        now = time.time()
        aud = claims.get("aud")
        checks = [
            (claims.get("iss") == issuer, "wrong issuer"),
            ("pcloud" in (aud if isinstance(aud, list) else [aud]), "wrong audience"),
            (claims.get("azp") == self.app and claims.get("client_id") == f"app:{self.app}", "not for this app"),
            (isinstance(claims.get("exp"), (int, float)) and claims["exp"] > now, "expired"),
            (claims.get("nbf", 0) <= now + self.leeway, "not yet valid"),
            (isinstance(claims.get("execution_id"), str), "no execution id"),
        ]
        for ok, why in checks:
            if not ok:
                raise InvalidInvocation(why)
        return claims

    def invocation(self, headers, body: dict) -> Invocation:
        """From a request's headers (a mapping) and JSON body; raises InvalidInvocation."""
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise InvalidInvocation("no Bearer token")
        token = auth[len("Bearer "):].strip()
        claims = self.claims(token)
        if not isinstance(body, dict):
            raise InvalidInvocation("body is not a JSON object")
        execution_id = body.get("execution_id")
        if execution_id != claims["execution_id"] or headers.get("Idempotency-Key") != execution_id:
            raise InvalidInvocation("execution id, Idempotency-Key and token disagree")
        if (body.get("user") or {}).get("id") != claims.get("sub"):
            raise InvalidInvocation("the body's user is not the token's")
        return Invocation(execution_id=execution_id, action=body.get("action", ""), params=body.get("params") or {},
                          user=body.get("user") or {}, settings=body.get("settings") or {},
                          api_url=body.get("api_url") or self.api_url, token=token, claims=claims,
                          event=body.get("event"))
