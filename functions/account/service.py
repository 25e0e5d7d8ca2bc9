"""The account's own rules (no Flask): profile and name, linked identities, and the places it is signed in.

Browser sign-ins are SSO sessions (runtime/sso_sessions.py; ending one is the SSO's `end_session`, which also
owes the session's siblings a back-channel logout and stops their refresh tokens). Phones and other
first-party clients sign in with a refresh-token family (runtime/refresh.py). Sibling families bound to an SSO
session are not listed on their own: they live and die with their browser session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from functions.sso.service import SsoService
from runtime import devices, refresh, sso_sessions, users
from runtime.errors import BadRequest, NotFound
from runtime.ids import iso, utcnow

PROVIDER_LABELS = {"google": "Google", "facebook": "Facebook"}
FIRST_PARTY = "pcloud"


class AccountService:
    def __init__(self, db, settings, mongo=None, clock: Callable[[], datetime] = utcnow):
        self.db, self.settings, self.clock = db, settings, clock
        self.sso = SsoService(db, settings, mongo, clock=clock)

    # --- profile -----------------------------------------------------------------------------------------
    def profile(self, user_id: str) -> dict:
        doc = users.get(self.db, user_id)
        if doc is None:
            raise NotFound("this account no longer exists", code="not_found")
        linked, seen = [], set()
        for ident in doc.get("identities") or []:
            provider = ident.get("provider")
            if provider and provider not in seen:
                seen.add(provider)
                linked.append({"provider": provider, "label": PROVIDER_LABELS.get(provider, provider.title())})
        return {"id": doc["_id"], "email": doc.get("email") or "", "name": doc.get("name") or doc.get("email") or "",
                "role": doc.get("role") or "member", "created_at": iso(doc.get("created_at")), "identities": linked}

    def rename(self, user_id: str, name: str) -> dict:
        name = " ".join(name.split())
        if not name or any(not ch.isprintable() for ch in name):
            raise BadRequest("a name needs at least one visible character and no control characters",
                             code="invalid_name")
        if users.set_name(self.db, user_id, name) is None:
            raise NotFound("this account no longer exists", code="not_found")
        return self.profile(user_id)

    # --- sessions ----------------------------------------------------------------------------------------
    def sessions(self, user_id: str, current: str | None) -> dict:
        """Browsers first (newest first), then phones and other first-party sign-ins."""
        now = self.clock()
        items = [{"id": s["_id"], "kind": "browser", "client_id": FIRST_PARTY, "provider": s.get("provider"),
                  "apps": list(s.get("clients") or []), "device_id": None, "device_name": None,
                  "created_at": iso(s.get("created_at")), "last_used_at": None, "expires_at": iso(s.get("expires_at")),
                  "current": s["_id"] == current}
                 for s in sso_sessions.live_for_user(self.db, user_id, now)]
        families = [f for f in refresh.live_families(self.db, user_id, now) if not f.get("sid")]
        names = devices.names(self.db, user_id, {f.get("device_id") for f in families})
        for fam in families:
            first_party = fam.get("client_id") == FIRST_PARTY
            items.append({"id": fam["_id"], "kind": "phone" if first_party else "app",
                          "client_id": fam.get("client_id") or FIRST_PARTY, "provider": None, "apps": [],
                          "device_id": fam.get("device_id") if fam.get("device_id") in names else None,
                          "device_name": names.get(fam.get("device_id")),
                          "created_at": iso(fam.get("created_at")), "last_used_at": iso(fam.get("last_used_at")),
                          "expires_at": iso(fam.get("expires_at")), "current": fam["_id"] == current})
        return {"items": items, "next_cursor": None}

    def end_session(self, user_id: str, session_id: str) -> list[str]:
        """End one browser session or revoke one family of this user; the back-channel deliveries owed."""
        now = self.clock()
        if sso_sessions.find_live(self.db, session_id, now, user_id=user_id) is not None:
            return self.sso.end_session(session_id, "revoked_by_user")
        fam = refresh.family(self.db, session_id)
        if fam is None or fam.get("user_id") != user_id or fam.get("revoked") or fam.get("sid"):
            raise NotFound("no such session (it may have ended already)", code="not_found")
        refresh.revoke_family(self.db, session_id, now, reason="revoked_by_user")
        return []

    def sign_out_everywhere(self, user_id: str) -> tuple[dict, list[str]]:
        """Every browser session ends and every refresh family is revoked; access tokens already handed out
        run out within PCLOUD_ACCESS_TOKEN_SECONDS. Returns (counts, back-channel deliveries owed)."""
        now = self.clock()
        deliveries: list[str] = []
        ended = 0
        for session in sso_sessions.live_for_user(self.db, user_id, now, limit=10_000):
            deliveries += self.sso.end_session(session["_id"], "signed_out_everywhere")
            ended += 1
        revoked = refresh.revoke_user(self.db, user_id, now, reason="signed_out_everywhere")
        return {"sessions_ended": ended, "families_revoked": revoked}, deliveries
