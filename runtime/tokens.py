"""Access tokens (RFC 9068 JWTs): issuing them, and verifying them strictly and fast at the gateway.

Every PCloud-signed JWT says what it is in its `typ` header: access tokens are `at+jwt`, ID tokens `JWT`,
back-channel logout tokens `logout+jwt`. Only access tokens are bearer credentials. Signature and claims are
checked by joserfc (its JWS decoder and the RFC 9068 claims registry Authlib builds on it); in front sits an
LRU of verified tokens, so a busy client costs one RSA check per token, not per request.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import requests
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaimsValidator
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from runtime.errors import Unauthorized
from runtime.identity import USER_SCOPES, Identity
from runtime.ids import new_id

ALLOWED_ALGS = ["RS256"]
ACCESS_TOKEN_TYP = "at+jwt"
_ACCESS_TYPS = {"at+jwt", "application/at+jwt"}  # RFC 9068 §4: either spelling, case-insensitive
FIRST_PARTY = "pcloud"
APP_CLIENT_PREFIX = "app:"
MAX_LIFETIME = 900


def issue_access_token(keys, settings, sub: str, aud: str, extra: dict | None = None, *,
                       client_id: str | None = None, scopes=None) -> tuple[str, int]:
    """An RFC 9068 access token. First-party (`aud=pcloud`) tokens default to every user scope; anybody
    else's to none — the caller names what the sibling was registered with."""
    now = int(time.time())
    lifetime = min(settings.access_token_seconds, MAX_LIFETIME)
    if scopes is None:
        scopes = USER_SCOPES if aud == FIRST_PARTY else ()
    claims = {"iss": settings.public_url, "sub": sub, "aud": aud, "client_id": client_id or aud,
              "scope": " ".join(scopes), "iat": now, "nbf": now, "exp": now + lifetime, "jti": new_id(),
              **(extra or {})}
    return keys.sign(claims, {"typ": ACCESS_TOKEN_TYP}), lifetime


def issue_invocation_token(keys, settings, *, user_id: str, app: str, scopes: list[str], grants: dict,
                           execution_id: str, depth: int, deadline: float) -> str:
    """The token PCloud hands an app for one execution: this user, only what the owner approved, until the
    deadline (at most 15 minutes away). `admin` is never delegated to an app."""
    now = time.time()
    if not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= now:
        raise ValueError("an invocation token needs a deadline in the future")
    unknown = [s for s in scopes if s not in USER_SCOPES]
    if unknown:
        raise ValueError(f"not a delegable user scope: {', '.join(unknown)}")
    if not isinstance(grants, dict) or not app or not execution_id or not isinstance(depth, int) or depth < 0:
        raise ValueError("an invocation token needs an app, a grants object, an execution id and a depth ≥ 0")
    issued = int(now)
    claims = {"iss": settings.public_url, "sub": user_id, "aud": FIRST_PARTY, "client_id": APP_CLIENT_PREFIX + app,
              "azp": app, "scope": " ".join(dict.fromkeys(scopes)), "grants": grants, "execution_id": execution_id,
              "depth": depth, "iat": issued, "nbf": issued, "exp": int(min(deadline, now + MAX_LIFETIME)),
              "jti": new_id()}
    json.dumps(claims)  # a grants object that cannot travel fails here, not at the gateway
    return keys.sign(claims, {"typ": ACCESS_TOKEN_TYP})


def identity_from_claims(claims: dict) -> Identity:
    """What the functions see of a verified access token (they never parse tokens themselves)."""
    app = claims.get("azp") if claims["client_id"].startswith(APP_CLIENT_PREFIX) else None
    return Identity(user_id=claims["sub"], client_id=claims["client_id"], via="bearer",
                    session_id=claims.get("sid") or claims.get("fam"),  # SSO session, or a phone's refresh family
                    scopes=tuple(claims.get("scope", "").split()), app=app,
                    grants=claims.get("grants") if app else None,
                    execution_id=claims.get("execution_id") if app else None,
                    depth=claims.get("depth", 0) if app else 0)


def jwks_from_url(url: str, timeout: float = 5.0) -> Callable[[], dict]:
    """A JWKS source for a gateway deployed apart from the SSO function."""

    def fetch() -> dict:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
        return resp.json()

    return fetch


class AccessTokenClaims(JWTAccessTokenClaimsValidator):
    """RFC 9068 §2.2 claims, plus what PCloud adds: `scope` a string, and an app token names its app
    consistently (`client_id` = `app:<azp>`) with its grants, execution and depth."""

    def __init__(self, issuer: str, audiences: set[str], leeway: int):
        super().__init__(leeway=leeway,
                         iss={"essential": True, "value": issuer}, aud={"essential": True, "values": sorted(audiences)},
                         exp={"essential": True}, iat={"essential": True}, sub={"essential": True},
                         jti={"essential": True}, client_id={"essential": True}, scope={"essential": True,
                                                                                         "allow_blank": True})

    def validate_exp(self, value) -> None:
        """No leeway on expiry: a token is dead at `exp` (leeway only forgives clocks running ahead)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidClaimError("exp", "Claim 'exp' must be a NumericDate value")
        if value <= time.time():
            raise ExpiredTokenError("exp")

    def validate_scope(self, value) -> None:
        if not isinstance(value, str):
            raise InvalidClaimError("scope", "Claim 'scope' must be a space-separated string")

    def validate_client_id(self, value) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidClaimError("client_id")

    def validate(self, claims: dict) -> None:
        super().validate(claims)
        client_id, aud = claims["client_id"], claims["aud"]
        auds = [aud] if isinstance(aud, str) else aud
        if client_id.startswith(APP_CLIENT_PREFIX):
            if FIRST_PARTY not in auds or claims.get("azp") != client_id[len(APP_CLIENT_PREFIX):]:
                raise InvalidClaimError("azp", "an app token's azp must name the app of its client_id")
            depth = claims.get("depth")
            if not isinstance(claims.get("grants"), dict) or not isinstance(claims.get("execution_id"), str) \
                    or not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
                raise InvalidClaimError("grants", "an app token needs grants, execution_id and depth")
        elif client_id != FIRST_PARTY and client_id not in auds:
            raise InvalidClaimError("client_id", "a sibling's token is for that sibling")
        elif client_id == FIRST_PARTY and FIRST_PARTY not in auds:
            raise InvalidClaimError("aud")
        if "events" in claims or "nonce" in claims or "at_hash" in claims:
            raise InvalidClaimError("typ", "an ID or logout token is not an access token")


_CLAIM_MESSAGES = {"iss": "token issuer mismatch", "aud": "token audience not accepted",
                   "nbf": "token not yet valid", "iat": "token not yet valid (issued in the future)",
                   "sub": "token has no subject", "client_id": "token client_id not accepted"}


class TokenVerifier:
    """Verifies RS256 access tokens against a cached key set; refreshes it on an unknown kid (rate-limited).

    Verified tokens are remembered (LRU) with their Identity until they expire.
    """

    def __init__(self, jwks_source: Callable[[], dict], issuer: str, audiences: Callable[[], set[str]] | set[str],
                 cache_size: int = 20000, leeway: int = 30, refresh_interval: float = 10.0):
        self._source = jwks_source
        self.issuer = issuer
        self._audiences = audiences if callable(audiences) else (lambda: audiences)
        self._keyset: dict | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[dict, Identity]] = OrderedDict()
        self._cache_size = cache_size
        self.leeway = leeway
        self.refresh_interval = refresh_interval
        self._registry: tuple[frozenset, AccessTokenClaims] | None = None

    def _keys(self, kid: str) -> dict:
        """kid → public key; the key set is fetched again when a token names a kid we have not seen."""
        with self._lock:
            stale = self._keyset is None or (kid not in self._keyset and
                                             time.monotonic() - self._fetched_at > self.refresh_interval)
            if stale:
                keyset = KeySet.import_key_set(self._source())
                self._keyset = {k.kid: k for k in keyset.keys if k.key_type == "RSA" and k.kid}
                self._fetched_at = time.monotonic()
            return self._keyset

    def verify(self, token: str) -> dict:
        """The claims of a valid access token, else Unauthorized (`invalid_token` / `token_expired`)."""
        return self._verified(token)[0]

    def identity(self, token: str) -> Identity:
        return self._verified(token)[1]

    def cached_identity(self, token: str) -> Identity | None:
        """The Identity of a token verified before and not expired, without verifying anything now."""
        cached = self._cache.get(token)
        if cached is None or cached[0]["exp"] <= time.time():
            return None
        return cached[1]

    def _verified(self, token: str) -> tuple[dict, Identity]:
        cached = self._cache.get(token)
        if cached is not None:
            if cached[0]["exp"] > time.time():
                return cached
            self._cache.pop(token, None)
        claims = self._verify_uncached(token)
        entry = (claims, identity_from_claims(claims))
        with self._lock:
            self._cache[token] = entry
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry

    def _claims_registry(self) -> AccessTokenClaims:
        audiences = frozenset(self._audiences())
        current = self._registry
        if current is None or current[0] != audiences:
            current = self._registry = (audiences, AccessTokenClaims(self.issuer, set(audiences), self.leeway))
        return current[1]

    def _verify_uncached(self, token: str) -> dict:
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise Unauthorized("malformed token", code="invalid_token")
        try:
            header = json.loads(_b64decode(token.partition(".")[0]))
        except ValueError:
            raise Unauthorized("malformed token header", code="invalid_token") from None
        if not isinstance(header, dict) or header.get("alg") not in ALLOWED_ALGS:
            raise Unauthorized("token algorithm not allowed", code="invalid_token")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCESS_TYPS:
            raise Unauthorized(f"not an access token (typ {typ!r}); ID and logout tokens are no bearer tokens",
                               code="invalid_token")
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
            claims = jwt.decode(token, key, algorithms=ALLOWED_ALGS).claims
        except BadSignatureError:
            raise Unauthorized("token rejected: bad signature", code="invalid_token") from None
        except (JoseError, ValueError):
            raise Unauthorized("token rejected: malformed", code="invalid_token") from None
        if not isinstance(claims, dict):
            raise Unauthorized("token rejected: claims are not an object", code="invalid_token")
        try:
            self._claims_registry().validate(claims)
        except ExpiredTokenError:
            raise Unauthorized("token expired", code="token_expired") from None
        except MissingClaimError as exc:
            message = "token has no subject" if exc.claim == "sub" else f"token rejected: missing claim {exc.claim}"
            raise Unauthorized(message, code="invalid_token") from None
        except ClaimError as exc:
            raise Unauthorized(_CLAIM_MESSAGES.get(exc.claim, f"token rejected: {exc.description}"),
                               code="invalid_token") from None
        return claims


def _b64decode(segment: str) -> bytes:
    if not _B64URL.match(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
