"""Who is calling: the gateway authenticates, functions only read the result.

In-process functions find the Identity in the WSGI environ; a function deployed behind a URL receives it in
the X-PCloud-Identity header, HMAC-signed by the gateway with a secret from PCLOUD_DATA_DIR, so nobody can
forge it by calling the function directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, fields

from runtime.errors import Unauthorized

ENVIRON_KEY = "pcloud.identity"
HEADER = "X-PCloud-Identity"

#: Every scope a user holds over their own data (CONTRACT §2); first-party tokens carry all of them.
USER_SCOPES: tuple[str, ...] = ("files.read", "files.write", "devices", "pairing", "sync", "graph.read",
                                "graph.write", "apps", "search")
ADMIN_SCOPE = "admin"


@dataclass(frozen=True)
class Identity:
    """The authenticated caller. `scopes` bound what it may reach; an app invocation also names the app,
    the owner's grants to it, and the execution (with its causal depth) the call belongs to.

    `session_id` is the sign-in the call belongs to: the SSO session (cookie, sibling tokens) or, for a
    first-party bearer token, its refresh family (what a phone's registration binds to the device)."""

    user_id: str
    client_id: str = "pcloud"
    via: str = "bearer"  # bearer | cookie
    session_id: str | None = None
    scopes: tuple[str, ...] = USER_SCOPES
    app: str | None = None
    grants: dict | None = None
    execution_id: str | None = None
    depth: int = 0

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes


_FIELDS = {f.name for f in fields(Identity)}


def encode_identity(identity: Identity, secret: bytes) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(asdict(identity), separators=(",", ":")).encode()).decode()
    sig = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{sig}"


def decode_identity(value: str, secret: bytes) -> Identity | None:
    payload, _, sig = value.partition(".")
    good = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    if not sig or not hmac.compare_digest(sig, good):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload))
        if not isinstance(data, dict) or not set(data) <= _FIELDS:
            return None
        if "scopes" in data:
            data["scopes"] = tuple(data["scopes"])
        return Identity(**data)
    except (ValueError, TypeError):
        return None


def optional_identity() -> Identity | None:
    from flask import request

    return request.environ.get(ENVIRON_KEY)


def current_identity() -> Identity:
    ident = optional_identity()
    if ident is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <access_token>", code="unauthorized")
    return ident


class IdentityFromHeader:
    """WSGI middleware for a function deployed on its own: trusts only the gateway-signed header."""

    def __init__(self, app, secret: bytes):
        self.app = app
        self.secret = secret

    def __call__(self, environ, start_response):
        environ.pop(ENVIRON_KEY, None)
        raw = environ.pop("HTTP_X_PCLOUD_IDENTITY", None)
        if raw:
            ident = decode_identity(raw, self.secret)
            if ident is not None:
                environ[ENVIRON_KEY] = ident
        return self.app(environ, start_response)
