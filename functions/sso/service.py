"""The sign-in center: users, SSO sessions, pending provider logins and back-channel logout.

Plain Python over MongoDB (no Flask): routes and the mobile exchange call it, the periodic job ends sessions.
Secrets the browser holds (session cookie, login binding) are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import requests
from pymongo import ASCENDING

from functions.sso.providers import LoginStart, Profile
from runtime import refresh as refresh_store
from runtime import sso_sessions, users
from runtime.errors import BadRequest
from runtime.ids import as_utc, new_id, utcnow
from runtime.mongo import register_indexes, transaction

log = logging.getLogger(__name__)

SESSION_COOKIE = "pcloud_sso"
LOGIN_COOKIE = "pcloud_sso_login"
LOGIN_SECONDS = 600
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
BACKCHANNEL_MAX_ATTEMPTS = 8
DEFAULT_NEXT = "/portal/"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@register_indexes
def _indexes(db) -> None:
    db.sso_pending.create_index([("expires_at", ASCENDING)])
    db.sso_codes.create_index([("expires_at", ASCENDING)])
    db.sso_backchannel.create_index([("status", ASCENDING), ("next_at", ASCENDING)])


class SignInRefused(Exception):
    """The provider's answer was fine but it cannot become a PCloud sign-in (unverified email…)."""

    def __init__(self, message: str, code: str = "email_unverified"):
        super().__init__(message)
        self.code = code


class SsoService:
    def __init__(self, db, settings, mongo_client=None, clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.settings = settings
        self.mongo_client = mongo_client
        self.clock = clock

    # --- where the browser may be sent ------------------------------------------------------------
    def safe_next(self, next_url: str | None) -> str:
        """`next` must be a same-origin path/URL or a registered sibling redirect URI, else 400."""
        if next_url is None or next_url == "":
            return DEFAULT_NEXT
        if any(ord(ch) < 0x20 or ch == "\\" for ch in next_url) or len(next_url) > 4096:
            raise BadRequest("next is not an acceptable URL", code="invalid_next")
        if next_url.startswith("/") and not next_url.startswith("//"):
            return next_url
        parts = urlsplit(next_url)
        own = urlsplit(self.settings.public_url)
        if parts.scheme in ("http", "https") and (parts.scheme, parts.netloc) == (own.scheme, own.netloc):
            return next_url
        if any(next_url in c.redirect_uris for c in self.settings.sso_clients):
            return next_url
        raise BadRequest("next must be on this site or a registered sibling app's redirect URI",
                         code="invalid_next", details={"next": next_url})

    # --- pending provider logins ------------------------------------------------------------------
    def begin_login(self, provider: str, start: LoginStart, next_url: str) -> str:
        """Remember state, nonce and PKCE verifier; returns the value of the browser-binding cookie."""
        binding = secrets.token_urlsafe(32)
        now = self.clock()
        self.db.sso_pending.insert_one({
            "_id": sha256_hex(start.state), "provider": provider, "nonce": start.nonce,
            "code_verifier": start.code_verifier, "next": next_url, "binding": sha256_hex(binding),
            "created_at": now, "expires_at": now + timedelta(seconds=LOGIN_SECONDS)})
        return binding

    def take_login(self, provider: str, state: str | None, binding: str | None) -> dict:
        """The pending login for this state, used up; bad or missing state → 400."""
        if not state:
            raise BadRequest("the callback carries no state", code="invalid_state")
        doc = self.db.sso_pending.find_one_and_delete({"_id": sha256_hex(state)})
        if doc is None:
            raise BadRequest("unknown or already used state", code="invalid_state")
        if doc["provider"] != provider:
            raise BadRequest("state belongs to another provider", code="invalid_state")
        if not binding or not hmac.compare_digest(doc["binding"], sha256_hex(binding)):
            raise BadRequest("this sign-in was started in another browser, or at another address than "
                             f"{self.settings.public_url}; start again there", code="invalid_state")
        if as_utc(doc["expires_at"]) <= self.clock():
            raise BadRequest("the sign-in took too long; start again", code="invalid_state")
        return doc

    # --- users ------------------------------------------------------------------------------------
    def sign_in(self, profile: Profile) -> dict:
        """The user for this provider identity; linked by verified email, created when new. A disabled
        account cannot sign in."""
        user = self._find_or_create(profile)
        if user.get("disabled"):
            raise SignInRefused("this account is disabled; ask your PCloud admin", code="account_disabled")
        return self.settle_role(user)

    def _find_or_create(self, profile: Profile) -> dict:
        ident = {"provider": profile.provider, "subject": profile.subject}
        user = users.by_identity(self.db, profile.provider, profile.subject)
        if user is not None:
            return user
        if not profile.email or not profile.email_verified:
            raise SignInRefused("the provider has not verified this account's email address")
        for _ in range(3):
            user = users.link_identity(self.db, profile.email, ident)
            if user is not None:
                return user
            user = users.create(self.db, profile.email, profile.name, [ident], self.clock())
            if user is not None:
                return user  # else someone created it meanwhile: link to theirs
        raise SignInRefused("could not create the account; try again", code="account_conflict")

    def settle_role(self, user: dict) -> dict:
        """CONTRACT §2: emails in PCLOUD_ADMIN_EMAILS are admins; without that list the first user ever created
        is. A role once settled is the admin API's to change (a listed email is promoted again at sign-in)."""
        listed = self.settings.admin_emails
        if listed and (user.get("email") or "").lower() in listed:
            if user.get("role") != "admin":
                users.set_role(self.db, user["_id"], "admin")
                user = {**user, "role": "admin"}
            return user
        if user.get("role") in users.ROLES:
            return user
        role = "admin" if not listed and users.first_user_id(self.db) == user["_id"] else "member"
        users.set_role(self.db, user["_id"], role, only_if_unset=True)
        return users.get(self.db, user["_id"]) or {**user, "role": role}

    def user(self, user_id: str) -> dict | None:
        return users.get(self.db, user_id)

    # --- SSO sessions -----------------------------------------------------------------------------
    def create_session(self, user_id: str, provider: str) -> tuple[str, dict]:
        """A new session; returns (cookie value, document). The document's _id is the cookie's SHA-256."""
        return sso_sessions.create(self.db, user_id, provider, timedelta(seconds=self.settings.sso_session_seconds),
                                   self.clock())

    def live_session(self, cookie: str | None = None, sid: str | None = None) -> dict | None:
        if cookie:
            sid = sha256_hex(cookie)
        return sso_sessions.find_live(self.db, sid, self.clock())

    def add_client(self, sid: str, client_id: str) -> None:
        sso_sessions.add_client(self.db, sid, client_id)

    def end_session(self, sid: str, reason: str) -> list[str]:
        """End it once and record the back-channel deliveries owed with it. Returns delivery ids.

        No outbox event: nothing consumes one (siblings hear through sso_backchannel, the gateway and the portal
        read the session itself)."""
        now = self.clock()

        def write(session):
            doc = sso_sessions.end(self.db, sid, reason, now, session=session)
            if doc is None:
                return []
            ids = []
            for client_id in doc.get("clients", []):
                client = self.settings.sso_client(client_id)
                if client is None or not client.backchannel_logout_uri:
                    continue
                delivery_id = new_id()
                self.db.sso_backchannel.insert_one({
                    "_id": delivery_id, "sid": sid, "user_id": doc["user_id"], "client_id": client_id,
                    "uri": client.backchannel_logout_uri, "status": "pending", "attempts": 0,
                    "next_at": now, "created_at": now}, session=session)
                ids.append(delivery_id)
            return ids

        if self.mongo_client is not None:
            return transaction(self.mongo_client, write)
        return write(None)

    def end_expired_sessions(self, limit: int = 500) -> int:
        """Sessions whose lifetime is over end like a logout (siblings get back-channel logout)."""
        now = self.clock()
        ended = 0
        for sid in sso_sessions.expired_ids(self.db, now, limit):
            self.end_session(sid, "expired")
            ended += 1
        return ended

    def purge_expired(self, keep: timedelta = timedelta(days=1)) -> int:
        """Drop what can no longer be used: old pending logins, codes, refresh tokens, deliveries, sessions.

        Used codes and refresh tokens are kept a day past expiry so a late replay still revokes its family.
        """
        now = self.clock()
        removed = self.db.sso_pending.delete_many({"expires_at": {"$lte": now}}).deleted_count
        removed += self.db.sso_codes.delete_many({"expires_at": {"$lte": now - keep}}).deleted_count
        removed += refresh_store.purge_expired(self.db, now - keep)
        removed += self.db.sso_backchannel.delete_many({"status": {"$in": ["done", "failed"]},
                                                        "created_at": {"$lte": now - 7 * keep}}).deleted_count
        removed += sso_sessions.purge_ended(self.db, now - 30 * keep)
        return removed

    # --- back-channel logout ----------------------------------------------------------------------
    def deliver_backchannel(self, sign: Callable[[dict, dict], str], ids: list[str] | None = None,
                            timeout: float = 5.0, limit: int = 200) -> dict:
        """POST a signed logout_token to each due sibling; failures retry with backoff, at most 8 times."""
        now = self.clock()
        query = {"status": "pending", "next_at": {"$lte": now}}
        if ids is not None:
            query["_id"] = {"$in": ids}
        counts = {"sent": 0, "retry": 0, "failed": 0}
        for doc in list(self.db.sso_backchannel.find(query).limit(limit)):
            issued = int(time.time())
            token = sign({"iss": self.settings.public_url, "aud": doc["client_id"], "iat": issued,
                          "exp": issued + 120, "jti": new_id(), "sub": doc["user_id"], "sid": doc["sid"],
                          "events": {BACKCHANNEL_EVENT: {}}}, {"typ": "logout+jwt"})
            try:
                resp = requests.post(doc["uri"], data={"logout_token": token}, timeout=timeout,
                                     headers={"Cache-Control": "no-store"})
                ok, why = resp.status_code in (200, 204), f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                ok, why = False, exc.__class__.__name__
            attempts = doc.get("attempts", 0) + 1
            if ok:
                self.db.sso_backchannel.update_one({"_id": doc["_id"]}, {"$set": {
                    "status": "done", "attempts": attempts, "done_at": self.clock()}})
                counts["sent"] += 1
            elif attempts >= BACKCHANNEL_MAX_ATTEMPTS:
                log.warning("back-channel logout to %s gave up after %d attempts: %s", doc["uri"], attempts, why)
                self.db.sso_backchannel.update_one({"_id": doc["_id"]}, {"$set": {
                    "status": "failed", "attempts": attempts, "last_error": why}})
                counts["failed"] += 1
            else:
                delay = min(5 * 2 ** (attempts - 1), 600)
                self.db.sso_backchannel.update_one({"_id": doc["_id"]}, {"$set": {
                    "attempts": attempts, "last_error": why, "next_at": self.clock() + timedelta(seconds=delay)}})
                counts["retry"] += 1
        return counts
