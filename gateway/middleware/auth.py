"""Turns a Bearer token (or the portal's SSO cookie plus CSRF header) into an Identity."""

from __future__ import annotations

import hashlib
import hmac
import logging
from http.cookies import CookieError, SimpleCookie

from pymongo.errors import PyMongoError

from runtime.errors import Unauthorized, Unavailable
from runtime.identity import Identity
from runtime.ids import as_utc, utcnow

log = logging.getLogger(__name__)
SESSION_COOKIE = "pcloud_sso"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class Authenticator:
    def __init__(self, verifier, sessions_collection=None):
        self.verifier = verifier
        self.sessions = sessions_collection

    def identify(self, environ, allow_cookie: bool) -> Identity | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be 'Bearer <access_token>'", code="invalid_token")
            claims = self.verifier.verify(token.strip())
            aud = claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][0]
            return Identity(user_id=claims["sub"], client_id=aud, via="bearer", session_id=claims.get("sid"))
        if allow_cookie and self.sessions is not None:
            return self._from_cookie(environ)
        return None

    def _from_cookie(self, environ) -> Identity | None:
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return None
        try:
            morsel = SimpleCookie(raw).get(SESSION_COOKIE)
        except CookieError:
            return None
        if morsel is None or not morsel.value:
            return None
        sid_hash = hashlib.sha256(morsel.value.encode()).hexdigest()
        try:
            session = self.sessions.find_one({"_id": sid_hash})
        except PyMongoError as exc:
            raise Unavailable("session store unavailable", details={"dependency": "mongo"}) from exc
        if not session or session.get("ended_at") or as_utc(session["expires_at"]) <= utcnow():
            return None
        if environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS:
            sent = environ.get("HTTP_X_CSRF_TOKEN", "")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                raise Unauthorized("a state-changing request with the session cookie needs the X-CSRF-Token header",
                                   code="csrf_required")
        return Identity(user_id=session["user_id"], client_id="pcloud", via="cookie", session_id=sid_hash)
