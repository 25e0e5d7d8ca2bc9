"""Sign-in providers: Google over OpenID Connect, Facebook over OAuth 2 + Graph, both through Authlib's client.

Everything a provider says is checked here (state is checked by the caller, which owns the pending login):
ID token signature against the discovery `jwks_uri` (RS256 only), `iss`, `aud` (Authlib does not check it by
itself, so strict claims options are passed), `exp`, `nonce`; Facebook tokens with `debug_token` for our app id.
Every HTTP call has a timeout; an unreachable provider is `ProviderUnavailable`, a refused answer `ProviderError`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken, IDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

ID_TOKEN_ALGS = ["RS256"]
METADATA_TTL = 3600.0
JWKS_REFRESH = 10.0


class ProviderError(Exception):
    """The provider (or the browser coming back from it) gave an answer we refuse."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered with a server error."""


@dataclass(frozen=True)
class Profile:
    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str


@dataclass(frozen=True)
class LoginStart:
    url: str
    state: str
    nonce: str | None
    code_verifier: str


class IdentityProvider(Protocol):
    name: str

    def start(self, redirect_uri: str) -> LoginStart: ...

    def finish(self, params: dict, pending: dict, redirect_uri: str) -> Profile: ...

    def verify_mobile(self, token: str) -> Profile: ...


def _http(method: str, url: str, timeout: float, **kwargs) -> requests.Response:
    try:
        resp = requests.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{url} did not answer ({exc.__class__.__name__})") from None
    if resp.status_code >= 500:
        raise ProviderUnavailable(f"{url} answered {resp.status_code}")
    return resp


def _json(resp: requests.Response) -> dict:
    try:
        data = resp.json()
    except ValueError:
        raise ProviderError(f"{resp.url} did not answer JSON") from None
    if not isinstance(data, dict):
        raise ProviderError(f"{resp.url} did not answer a JSON object")
    return data


def _fetch_token(session: OAuth2Session, url: str, **params) -> dict:
    try:
        return session.fetch_token(url, **params)
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"token endpoint did not answer ({exc.__class__.__name__})") from None
    except AuthlibBaseError as exc:
        raise ProviderError(f"token endpoint refused the code: {exc.error}") from None
    except ValueError as exc:  # a non-JSON body (e.g. an HTML 5xx page)
        raise ProviderUnavailable(f"token endpoint gave no token: {exc}") from None


class GoogleProvider:
    """OpenID Connect with state, nonce and PKCE; metadata and keys from the discovery document, cached."""

    name = "google"

    def __init__(self, client_id: str | None, client_secret: str | None, discovery_url: str,
                 mobile_client_ids: tuple[str, ...] = (), timeout: float = 10.0):
        self.client_id = client_id
        self.client_secret = client_secret
        self.discovery_url = discovery_url
        self.mobile_client_ids = mobile_client_ids
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_at = 0.0

    # --- discovery and keys ---------------------------------------------------------------
    def metadata(self) -> dict:
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL:
                return self._metadata
        resp = _http("GET", self.discovery_url, self.timeout)
        if resp.status_code != 200:
            raise ProviderUnavailable(f"discovery document answered {resp.status_code}")
        data = _json(resp)
        for field in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(field), str):
                raise ProviderUnavailable(f"discovery document has no {field}")
        with self._lock:
            self._metadata, self._metadata_at, self._jwks = data, time.monotonic(), None
        return data

    def _keyset(self, force: bool = False) -> KeySet:
        """Google's keys, cached; an unknown kid refetches them, at most once per JWKS_REFRESH seconds."""
        if self._jwks is not None and (not force or time.monotonic() - self._jwks_at < JWKS_REFRESH):
            return self._jwks
        resp = _http("GET", self.metadata()["jwks_uri"], self.timeout)
        if resp.status_code != 200:
            raise ProviderUnavailable(f"jwks_uri answered {resp.status_code}")
        try:
            keys = KeySet.import_key_set(_json(resp))
        except (JoseError, ValueError, TypeError) as exc:
            raise ProviderUnavailable(f"jwks_uri gave an unusable key set: {exc}") from None
        self._jwks, self._jwks_at = keys, time.monotonic()
        return keys

    def verify_id_token(self, id_token: str, audiences: list[str], nonce: str | None = None,
                        access_token: str | None = None) -> dict:
        """The ID token's claims, or ProviderError. aud must be one of `audiences`, iss the discovery issuer."""
        if not isinstance(id_token, str) or id_token.count(".") != 2:
            raise ProviderError("id_token is not a JWT")
        issuer = self.metadata()["issuer"]
        issuers = [issuer]
        if issuer == "https://accounts.google.com":
            issuers.append("accounts.google.com")  # Google documents both spellings
        try:
            try:
                decoded = jwt.decode(id_token, self._keyset(), algorithms=ID_TOKEN_ALGS)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, self._keyset(force=True), algorithms=ID_TOKEN_ALGS)
            aud = decoded.claims.get("aud")
            matched = next((a for a in ([aud] if isinstance(aud, str) else aud or []) if a in audiences), None)
            options = {"iss": {"essential": True, "values": issuers},
                       "aud": {"essential": True, "values": list(audiences)},
                       "sub": {"essential": True}, "exp": {"essential": True}}
            params = {"client_id": matched, "nonce": nonce}
            if access_token:
                params["access_token"] = access_token
            claims_cls = CodeIDToken if access_token else IDToken
            claims = claims_cls(decoded.claims, decoded.header, options, params)
            claims.validate(leeway=60)
            if nonce is not None and claims.get("nonce") != nonce:
                raise ProviderError("id_token nonce does not match this sign-in")
        except JoseError as exc:
            raise ProviderError(f"id_token refused: {exc.error}{': ' + exc.description if exc.description else ''}") \
                from None
        except ValueError as exc:
            raise ProviderError(f"id_token refused: {exc}") from None
        return dict(claims)

    @staticmethod
    def _profile(claims: dict) -> Profile:
        verified = claims.get("email_verified")
        if isinstance(verified, str):
            verified = verified.lower() == "true"
        email = claims.get("email")
        return Profile("google", str(claims["sub"]), email.lower() if isinstance(email, str) else None,
                       verified is True, str(claims.get("name") or email or ""))

    # --- web sign-in -----------------------------------------------------------------------
    def _session(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope="openid email profile",
                             redirect_uri=redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_post", default_timeout=self.timeout)

    def start(self, redirect_uri: str) -> LoginStart:
        meta = self.metadata()
        nonce, verifier = generate_token(24), generate_token(48)
        with self._session(redirect_uri) as session:
            url, state = session.create_authorization_url(meta["authorization_endpoint"], nonce=nonce,
                                                          code_verifier=verifier)
        return LoginStart(url, state, nonce, verifier)

    def finish(self, params: dict, pending: dict, redirect_uri: str) -> Profile:
        if params.get("error"):
            raise ProviderError(f"Google sign-in was not completed: {params['error']}")
        code = params.get("code")
        if not code:
            raise ProviderError("the callback carries no code")
        meta = self.metadata()
        with self._session(redirect_uri) as session:
            token = _fetch_token(session, meta["token_endpoint"], grant_type="authorization_code", code=code,
                                 code_verifier=pending["code_verifier"], timeout=self.timeout)
        if not token.get("id_token"):
            raise ProviderError("Google answered without an id_token")
        claims = self.verify_id_token(token["id_token"], [self.client_id], nonce=pending["nonce"],
                                      access_token=token.get("access_token"))
        return self._profile(claims)

    # --- phone exchange --------------------------------------------------------------------
    def verify_mobile(self, token: str) -> Profile:
        audiences = [a for a in (self.client_id, *self.mobile_client_ids) if a]
        if not audiences:
            raise ProviderError("Google sign-in is not configured")
        profile = self._profile(self.verify_id_token(token, audiences))
        if not profile.email or not profile.email_verified:
            raise ProviderError("the Google account's email is not verified")
        return profile


class FacebookProvider:
    """OAuth 2 dialog with state and PKCE; every user token is checked with debug_token for our app id."""

    name = "facebook"

    def __init__(self, client_id: str, client_secret: str, authorize_url: str, graph_url: str, timeout: float = 10.0):
        self.client_id = client_id
        self.client_secret = client_secret
        self.authorize_url = authorize_url
        self.graph_url = graph_url.rstrip("/") + "/"
        self.timeout = timeout

    def _session(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope="email public_profile",
                             redirect_uri=redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_post", default_timeout=self.timeout)

    def start(self, redirect_uri: str) -> LoginStart:
        # Facebook echoes a nonce only into Limited Login ID tokens; sent anyway so every sign-in carries one
        nonce, verifier = generate_token(24), generate_token(48)
        with self._session(redirect_uri) as session:
            url, state = session.create_authorization_url(self.authorize_url, code_verifier=verifier, nonce=nonce)
        return LoginStart(url, state, nonce, verifier)

    def finish(self, params: dict, pending: dict, redirect_uri: str) -> Profile:
        if params.get("error"):
            raise ProviderError(f"Facebook sign-in was not completed: {params['error']}")
        code = params.get("code")
        if not code:
            raise ProviderError("the callback carries no code")
        with self._session(redirect_uri) as session:
            token = _fetch_token(session, self.graph_url + "oauth/access_token", grant_type="authorization_code",
                                 code=code, code_verifier=pending["code_verifier"], timeout=self.timeout)
        if not token.get("access_token"):
            raise ProviderError("Facebook answered without an access_token")
        return self.profile(token["access_token"])

    def verify_mobile(self, token: str) -> Profile:
        return self.profile(token)

    def profile(self, access_token: str) -> Profile:
        """debug_token (issued for our app, valid) then `me`; an email Facebook returns counts as verified."""
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError("access_token is missing")
        app_token = f"{self.client_id}|{self.client_secret}"
        resp = _http("GET", self.graph_url + "debug_token", self.timeout,
                     params={"input_token": access_token, "access_token": app_token})
        data = _json(resp).get("data")
        if resp.status_code != 200 or not isinstance(data, dict):
            raise ProviderError("Facebook did not accept the token")
        if str(data.get("app_id")) != str(self.client_id):
            raise ProviderError("the Facebook token was issued for another app")
        if data.get("is_valid") is not True:
            raise ProviderError("the Facebook token is not valid")
        proof = hmac.new(self.client_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()
        resp = _http("GET", self.graph_url + "me", self.timeout,
                     params={"fields": "id,name,email", "access_token": access_token, "appsecret_proof": proof})
        me = _json(resp)
        if resp.status_code != 200 or not me.get("id"):
            raise ProviderError("Facebook did not return the profile")
        if data.get("user_id") is not None and str(data["user_id"]) != str(me["id"]):
            raise ProviderError("the Facebook token belongs to another user")
        email = me.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise ProviderError("Facebook did not share an email address for this account")
        return Profile("facebook", str(me["id"]), email.lower(), True, str(me.get("name") or email))


_lock = threading.Lock()
_cache: dict[tuple, dict[str, IdentityProvider]] = {}


def providers_for(settings) -> dict[str, IdentityProvider]:
    """The configured providers, built once per process per settings (discovery and keys stay cached)."""
    key = (settings.google_client_id, settings.google_discovery_url, settings.google_mobile_client_ids,
           settings.facebook_client_id, settings.facebook_graph_url, settings.facebook_authorize_url)
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = {}
            if settings.google_client_id or settings.google_mobile_client_ids:
                found["google"] = GoogleProvider(settings.google_client_id, settings.google_client_secret,
                                                 settings.google_discovery_url, settings.google_mobile_client_ids,
                                                 timeout=min(settings.http_timeout_seconds, 10.0))
            if settings.facebook_enabled:
                found["facebook"] = FacebookProvider(settings.facebook_client_id, settings.facebook_client_secret,
                                                     settings.facebook_authorize_url, settings.facebook_graph_url,
                                                     timeout=min(settings.http_timeout_seconds, 10.0))
            _cache[key] = found
        return found
