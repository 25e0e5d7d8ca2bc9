"""The OpenID Provider for sibling web apps (and the token endpoint the phone refreshes at).

Authorization code + PKCE (S256; required for public clients), codes single-use and alive ≤ 60 s, refresh
tokens opaque, stored hashed, rotated on every use, a reused one revokes its family. Errors are `OAuthError`s
so the routes answer them the OAuth way (RFC 6749 §5.2), not with our JSON error shape.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import unquote, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.errors import JoseError

from functions.sso.service import SsoService, sha256_hex
from runtime import refresh as refresh_store
from runtime.errors import ApiError, BadRequest
from runtime.identity import ADMIN_SCOPE, USER_SCOPES
from runtime.ids import as_utc, new_id
from runtime.settings import SsoClient
from runtime.tokens import ALLOWED_ALGS, issue_access_token

CODE_SECONDS = 60
MOBILE_REFRESH_DAYS = 60
FIRST_PARTY = SsoClient(client_id="pcloud", client_secret=None, redirect_uris=())
PKCE_VERIFIER_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class OpenIDProvider:
    def __init__(self, sso: SsoService, keys, settings):
        self.sso = sso
        self.db = sso.db
        self.keys = keys
        self.settings = settings

    # --- metadata -----------------------------------------------------------------------------------
    def discovery(self) -> dict:
        base = self.settings.public_url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth/authorize",
            "token_endpoint": f"{base}/auth/token",
            "userinfo_endpoint": f"{base}/auth/userinfo",
            "jwks_uri": f"{base}/auth/jwks.json",
            "end_session_endpoint": f"{base}/auth/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "offline_access", *USER_SCOPES, ADMIN_SCOPE],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "email",
                                 "email_verified", "name"],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": False,
        }

    # --- authorization endpoint -----------------------------------------------------------------------
    def authorize_client(self, client_id: str | None, redirect_uri: str | None) -> SsoClient:
        """Who is asking and where to answer; a mistake here is a 400 page, never a redirect (RFC 6749 §4.1.2.1)."""
        client = self.settings.sso_client(client_id or "")
        if client is None:
            raise BadRequest("unknown client_id", code="invalid_client", details={"client_id": client_id})
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            raise BadRequest("redirect_uri is not registered for this client", code="invalid_redirect_uri",
                             details={"redirect_uri": redirect_uri})
        return client

    def authorize_problem(self, client: SsoClient, params: dict) -> OAuthError | None:
        """An error to send back to the client's redirect_uri, or None when the request is good."""
        if params.get("response_type") != "code":
            return OAuthError("unsupported_response_type", "only response_type=code is supported")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method") or "plain"
        if challenge:
            if method != "S256":
                return OAuthError("invalid_request", "code_challenge_method must be S256")
            if not 43 <= len(challenge) <= 128:
                return OAuthError("invalid_request", "code_challenge has the wrong length")
        elif client.public:
            return OAuthError("invalid_request", "PKCE (code_challenge, S256) is required for public clients")
        return None

    @staticmethod
    def granted_scope(client: SsoClient, requested: str | None) -> str:
        """What a sibling gets: the scopes it asked for that it was registered with (all of them if it asked
        for none). Anything else asked for is silently dropped (RFC 6749 §3.3)."""
        if not requested:
            return " ".join(client.scopes)
        return " ".join(s for s in dict.fromkeys(requested.split()) if s in client.scopes)

    def issue_code(self, client: SsoClient, params: dict, session: dict) -> str:
        code = secrets.token_urlsafe(32)
        now = self.sso.clock()
        self.db.sso_codes.insert_one({
            "_id": sha256_hex(code), "client_id": client.client_id, "redirect_uri": params["redirect_uri"],
            "user_id": session["user_id"], "sid": session["_id"],
            "scope": self.granted_scope(client, params.get("scope")),
            "nonce": params.get("nonce"), "code_challenge": params.get("code_challenge"),
            "auth_time": int(as_utc(session["created_at"]).timestamp()), "created_at": now,
            "expires_at": now + timedelta(seconds=CODE_SECONDS), "used_at": None, "family": None})
        return code

    # --- token endpoint -----------------------------------------------------------------------------
    def authenticate_client(self, form: dict, authorization: str | None) -> SsoClient:
        """client_secret_basic, client_secret_post, or a public client by its id alone."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise OAuthError("invalid_client", "client authentication must be HTTP Basic", 401)
            try:
                raw = base64.b64decode(value.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
            basic_id, _, basic_secret = raw.partition(":")
            basic_id, basic_secret = unquote(basic_id), unquote(basic_secret)
            if client_id and client_id != basic_id:
                raise OAuthError("invalid_client", "client_id differs from the Basic credentials", 401)
            client_id, secret = basic_id, basic_secret
        if not client_id:
            raise OAuthError("invalid_client", "client_id is missing", 401)
        if client_id == FIRST_PARTY.client_id:
            return FIRST_PARTY
        client = self.settings.sso_client(client_id)
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.public:
            return client
        if not secret or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    def token(self, form: dict, authorization: str | None) -> dict:
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is missing")
        if grant not in ("authorization_code", "refresh_token"):
            raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")
        client = self.authenticate_client(form, authorization)
        if grant == "authorization_code":
            return self._exchange_code(client, form)
        return self._refresh(client, form)

    def _exchange_code(self, client: SsoClient, form: dict) -> dict:
        code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
        if not code:
            raise OAuthError("invalid_request", "code is missing")
        if client is FIRST_PARTY:
            raise OAuthError("unauthorized_client", "the first-party client has no authorization code grant")
        doc = self.db.sso_codes.find_one({"_id": sha256_hex(code)})
        if doc is None or doc["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if doc.get("used_at") is not None:
            if doc.get("family"):  # a replayed code revokes what it produced (RFC 6749 §4.1.2)
                self._revoke_family(doc["family"])
            raise OAuthError("invalid_grant", "authorization code already used")
        if as_utc(doc["expires_at"]) <= self.sso.clock():
            raise OAuthError("invalid_grant", "authorization code expired")
        if redirect_uri != doc["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if doc.get("code_challenge"):
            if not verifier or not set(verifier) <= PKCE_VERIFIER_CHARS or not 43 <= len(verifier) <= 128:
                raise OAuthError("invalid_grant", "code_verifier is missing or malformed")
            if not hmac.compare_digest(create_s256_code_challenge(verifier), doc["code_challenge"]):
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        elif verifier:
            raise OAuthError("invalid_grant", "code_verifier sent but the authorization used no PKCE")
        session = self.sso.live_session(sid=doc["sid"])
        if session is None:
            raise OAuthError("invalid_grant", "the sign-in session has ended")
        family = new_id()
        claimed = self.db.sso_codes.update_one({"_id": doc["_id"], "used_at": None},
                                               {"$set": {"used_at": self.sso.clock(), "family": family}})
        if claimed.modified_count != 1:
            raise OAuthError("invalid_grant", "authorization code already used")
        self.sso.add_client(doc["sid"], client.client_id)
        return self._tokens(client, doc["user_id"], doc["sid"], doc["scope"], family, nonce=doc.get("nonce"),
                            auth_time=doc.get("auth_time"), refresh_expires=as_utc(session["expires_at"]))

    def _refresh(self, client: SsoClient, form: dict) -> dict:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is missing")
        doc = refresh_store.find(self.db, sha256_hex(token))
        if doc is None or doc["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "unknown refresh token")
        now = self.sso.clock()
        if doc.get("revoked"):
            raise OAuthError("invalid_grant", "refresh token revoked")
        if doc.get("used_at") is not None:
            refresh_store.revoke_family(self.db, doc["family"], now, reason="reuse")
            raise OAuthError("invalid_grant", "refresh token already used; every token of its family is revoked")
        if as_utc(doc["expires_at"]) <= now:
            raise OAuthError("invalid_grant", "refresh token expired")
        refresh_expires = None
        if doc.get("sid"):
            session = self.sso.live_session(sid=doc["sid"])
            if session is None:
                raise OAuthError("invalid_grant", "the sign-in session has ended")
            refresh_expires = as_utc(session["expires_at"])
        user = self.sso.user(doc["user_id"])
        if user is None or user.get("disabled"):
            refresh_store.revoke_family(self.db, doc["family"], now, reason="disabled")
            raise OAuthError("invalid_grant", "the account no longer exists or is disabled")
        return self._tokens(client, doc["user_id"], doc.get("sid"), doc.get("scope") or "", doc["family"],
                            refresh_expires=refresh_expires, rotating=doc)

    def _revoke_family(self, family: str) -> None:
        refresh_store.revoke_family(self.db, family, self.sso.clock())

    def revoke(self, form: dict, authorization: str | None) -> None:
        """RFC 7009: a refresh token ends its family; a first-party access token the family it came from.
        Unknown, foreign or already dead tokens are no error (the answer is 200 either way)."""
        client = self.authenticate_client(form, authorization)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is missing")
        doc = refresh_store.find(self.db, sha256_hex(token))
        if doc is not None:
            if doc["client_id"] == client.client_id:
                self._revoke_family(doc["family"])
            return
        if token.count(".") == 2 and client is FIRST_PARTY:
            from runtime.tokens import TokenVerifier

            try:
                claims = TokenVerifier(self.keys.public_jwks, self.settings.public_url, {"pcloud"}).verify(token)
            except ApiError:
                return
            if claims.get("client_id") == FIRST_PARTY.client_id and claims.get("fam"):
                fam = refresh_store.family(self.db, claims["fam"])
                if fam is not None and fam["user_id"] == claims["sub"]:
                    self._revoke_family(fam["_id"])

    def access_scopes(self, client: SsoClient, user: dict | None, scope: str) -> list[str]:
        """First-party tokens hold every user scope; a sibling's what it was granted. `admin` only while the
        user is one."""
        admin = bool(user) and user.get("role") == "admin"
        if client is FIRST_PARTY:
            return [*USER_SCOPES, ADMIN_SCOPE] if admin else list(USER_SCOPES)
        return [s for s in scope.split() if s != ADMIN_SCOPE or admin]

    def _tokens(self, client: SsoClient, user_id: str, sid: str | None, scope: str, family: str,
                nonce: str | None = None, auth_time: int | None = None, refresh_expires=None,
                rotating: dict | None = None) -> dict:
        """Access token (+ ID token for siblings asking openid) and the family's next refresh token."""
        user = self.sso.user(user_id)
        if user is None or user.get("disabled"):
            raise OAuthError("invalid_grant", "the account no longer exists or is disabled")
        refresh = secrets.token_urlsafe(32)
        now = self.sso.clock()
        expires = refresh_expires or now + timedelta(days=MOBILE_REFRESH_DAYS)
        if rotating is not None:
            try:
                refresh_store.rotate(self.db.client, self.db, rotating, sha256_hex(refresh), now, expires)
            except refresh_store.Refused as exc:
                raise OAuthError("invalid_grant", str(exc)) from None
        else:
            refresh_store.start_family(self.db, family, sha256_hex(refresh), user_id=user_id,
                                       client_id=client.client_id, sid=sid, scope=scope, now=now, expires=expires)
        extra = {"sid": sid} if sid else {}
        if client is FIRST_PARTY:
            extra["fam"] = family  # the phone's sign-in: POST /mobile/v1/devices binds it to the device
        scopes = self.access_scopes(client, user, scope)
        access, lifetime = issue_access_token(self.keys, self.settings, sub=user_id, aud=client.client_id,
                                              extra=extra, client_id=client.client_id, scopes=scopes)
        body = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime, "refresh_token": refresh,
                "scope": " ".join(scopes)}
        if "openid" in scope.split() and client is not FIRST_PARTY:
            body["id_token"] = self.id_token(client.client_id, user_id, sid, access, nonce, auth_time)
        return body

    def id_token(self, client_id: str, user_id: str, sid: str | None, access_token: str, nonce: str | None,
                 auth_time: int | None) -> str:
        user = self.sso.user(user_id) or {}
        now = int(time.time())
        claims = {"iss": self.settings.public_url, "sub": user_id, "aud": client_id, "azp": client_id, "iat": now,
                  "exp": now + min(self.settings.access_token_seconds, 900), "sid": sid,
                  "at_hash": create_half_hash(access_token, "RS256").decode(),
                  "email": user.get("email"), "email_verified": True, "name": user.get("name")}
        if nonce:
            claims["nonce"] = nonce
        if auth_time:
            claims["auth_time"] = auth_time
        return self.keys.sign({k: v for k, v in claims.items() if v is not None}, {"typ": "JWT"})

    def first_party_tokens(self, user: dict) -> dict:
        """The phone's tokens after a provider exchange: aud `pcloud`, a new refresh family, no SSO session."""
        body = self._tokens(FIRST_PARTY, user["_id"], None, "", new_id())
        body["user"] = {"id": user["_id"], "email": user["email"], "name": user.get("name") or user["email"]}
        return body

    # --- userinfo -----------------------------------------------------------------------------------
    def userinfo(self, claims: dict) -> dict:
        user = self.sso.user(claims["sub"])
        if user is None:
            raise OAuthError("invalid_token", "the account no longer exists", 401)
        if user.get("disabled"):
            raise OAuthError("invalid_token", "the account is disabled", 401)
        return {"sub": user["_id"], "email": user["email"], "email_verified": True,
                "name": user.get("name") or user["email"], "role": user.get("role") or "member"}

    # --- RP-initiated logout --------------------------------------------------------------------------
    def id_token_hint_claims(self, hint: str) -> dict:
        """Our own ID token, signature and issuer checked; an expired one is still a fine hint."""
        try:
            decoded = jwt.decode(hint, self.keys.public_keyset(), algorithms=ALLOWED_ALGS)
        except (JoseError, ValueError) as exc:
            raise BadRequest(f"id_token_hint is not a token we issued: {exc}", code="invalid_id_token_hint") \
                from None
        if decoded.claims.get("iss") != self.settings.public_url:
            raise BadRequest("id_token_hint was issued by someone else", code="invalid_id_token_hint")
        return decoded.claims

    def logout_redirect(self, params: dict) -> tuple[str | None, dict | None]:
        """(where to send the browser afterwards or None, hint claims or None); unregistered targets → 400."""
        hint = params.get("id_token_hint")
        claims = self.id_token_hint_claims(hint) if hint else None
        client_id = params.get("client_id")
        if claims is not None:
            aud = claims.get("aud")
            hint_client = aud if isinstance(aud, str) else (aud or [None])[0]
            if client_id and client_id != hint_client:
                raise BadRequest("client_id does not match id_token_hint", code="invalid_request")
            client_id = hint_client
        target = params.get("post_logout_redirect_uri")
        if not target:
            return None, claims
        client = self.settings.sso_client(client_id or "")
        if client is None:
            raise BadRequest("post_logout_redirect_uri needs client_id or id_token_hint", code="invalid_request")
        if target not in client.post_logout_redirect_uris:
            raise BadRequest("post_logout_redirect_uri is not registered for this client",
                             code="invalid_post_logout_redirect_uri", details={"post_logout_redirect_uri": target})
        state = params.get("state")
        if state:
            sep = "&" if urlsplit(target).query else "?"
            target = f"{target}{sep}{urlencode({'state': state})}"
        return target, claims
