"""Turns a Bearer access token (or the portal's SSO cookie plus CSRF header) into an Identity.

The token says who and with which scopes; the user's current standing (disabled, role) is read from the
database at most every `status_ttl` seconds per user, so disabling or demoting someone takes effect within
that time even for tokens still alive (and already in the verifier's cache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import threading
import time
from http.cookies import CookieError, SimpleCookie

from pymongo.errors import PyMongoError

from runtime import sso_sessions, users
from runtime.errors import Unauthorized, Unavailable
from runtime.identity import ADMIN_SCOPE, USER_SCOPES, Identity

log = logging.getLogger(__name__)
SESSION_COOKIE = "pcloud_sso"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATUS_TTL = 30.0


class Authenticator:
    def __init__(self, verifier, sessions_collection=None, db=None, status_ttl: float = STATUS_TTL):
        self.verifier = verifier
        self.sessions = sessions_collection
        self.db = db
        self.status_ttl = status_ttl
        self._status: dict[str, tuple[float, bool, str]] = {}  # user id → (fresh until, disabled, role)
        self._status_lock = threading.Lock()

    def identify(self, environ, allow_cookie: bool) -> Identity | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be 'Bearer <access_token>'", code="invalid_token")
            return self._standing(self.verifier.identity(token.strip()))
        if allow_cookie and self.sessions is not None:
            return self._from_cookie(environ)
        return None

    def known_user(self, environ) -> str | None:
        """The user of a Bearer token this process already verified (no signature check), else None."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header[:7].lower() == "bearer ":
            return None
        identity = self.verifier.cached_identity(header[7:].strip())
        return identity.user_id if identity is not None else None

    def _standing(self, identity: Identity) -> Identity:
        """A disabled user's tokens stop working; `admin` counts only while the user still is one."""
        if self.db is None:
            return identity
        disabled, role = self._user_status(identity.user_id)
        if disabled:
            raise Unauthorized("this account is disabled", code="invalid_token")
        if role != "admin" and ADMIN_SCOPE in identity.scopes:
            identity = dataclasses.replace(identity, scopes=tuple(s for s in identity.scopes if s != ADMIN_SCOPE))
        return identity

    def _user_status(self, user_id: str) -> tuple[bool, str]:
        now = time.monotonic()
        entry = self._status.get(user_id)
        if entry is not None and entry[0] > now:
            return entry[1], entry[2]
        try:
            doc = users.standing(self.db, user_id)
        except PyMongoError as exc:
            if entry is not None:  # keep answering from what we knew rather than failing every request
                return entry[1], entry[2]
            raise Unavailable("user store unavailable", details={"dependency": "mongo"}) from exc
        status = (bool(doc and doc.get("disabled")), (doc or {}).get("role") or "member")
        with self._status_lock:
            if len(self._status) > 50000:
                self._status.clear()
            self._status[user_id] = (now + self.status_ttl, *status)
        return status

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
            session = sso_sessions.find_live(self.sessions.database, sid_hash)
        except PyMongoError as exc:
            raise Unavailable("session store unavailable", details={"dependency": "mongo"}) from exc
        if session is None:
            return None
        if environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS:
            sent = environ.get("HTTP_X_CSRF_TOKEN", "")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                raise Unauthorized("a state-changing request with the session cookie needs the X-CSRF-Token header",
                                   code="csrf_required")
        scopes = USER_SCOPES
        if self.db is not None:
            disabled, role = self._user_status(session["user_id"])
            if disabled:
                return None
            if role == "admin":
                scopes = (*USER_SCOPES, ADMIN_SCOPE)
        return Identity(user_id=session["user_id"], client_id="pcloud", via="cookie", session_id=sid_hash,
                        scopes=scopes)
