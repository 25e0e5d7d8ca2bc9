"""A person's own cloud drives as replica stores (issue 19, seed 002's Cloud service). Collection
`cloud_connections`, owned here.

- Connecting is OAuth 2 with Google through Authlib: `start` makes the authorize URL (state, PKCE S256,
  `access_type=offline` for a refresh token, scope `drive.file`: PCloud sees only the files it makes) and keeps a
  pending document for 10 minutes; `finish` (the callback) exchanges the code once, reads the account's email,
  finds or makes the app folder and stores the tokens sealed. Connecting the same Google account again updates
  that connection (a revoked drive comes back under the same store name).
- Tokens are AES-256-GCM sealed with a key from the key store (`$PCLOUD_DATA_DIR/secrets/cloud-token-key`,
  never in the database), bound to the owner and connection id; refreshed tokens are sealed the same way.
- A connection is the store `gdrive:<connection id>`, usable in that owner's folder policies only;
  `store_for` builds its DriveBlobStore (cached per process for a few seconds) for the replicated store's
  resolver. Google refusing the refresh token marks the connection `revoked`: its copies stop counting and
  the folders naming it report degraded until the person reconnects; disconnecting forgets the tokens
  (revoked at Google too) — the files stay in the drive's "PCloud blocks" folder, theirs to delete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import ASCENDING

from functions.files import replication
from runtime.errors import ApiError, BadRequest, NotFound
from runtime.ids import as_utc, iso, new_id, utcnow
from runtime.mongo import register_indexes
from runtime.store import StoreUnavailable
from runtime.store.gdrive import PREFIX, SCOPE, DriveBlobStore, drive_session, is_user_store

log = logging.getLogger(__name__)
PROVIDER = "google-drive"
PENDING = timedelta(minutes=10)
CACHE_SECONDS = 10.0
_ID = re.compile(r"^[0-9a-f]{24}$")
_cache: dict[tuple[int, str], tuple[float, str | None, DriveBlobStore | None]] = {}
_cache_lock = threading.Lock()


class NotConfigured(ApiError):
    status, code = 501, "cloud_not_configured"


class ConnectFailed(ApiError):
    """The OAuth dance did not end in a connection; `return_to` is where the browser goes to hear it."""

    def __init__(self, message: str, code: str, status: int = 400, return_to: str | None = None):
        super().__init__(message, code=code, status=status)
        self.return_to = return_to


@register_indexes
def ensure_indexes(db) -> None:
    db.cloud_connections.create_index([("owner", ASCENDING)])
    db.cloud_connections.create_index([("state_hash", ASCENDING)])


def store_name(connection_id: str) -> str:
    return f"{PREFIX}{connection_id}"


def connection_id(name: str) -> str | None:
    if not is_user_store(name):
        return None
    found = name[len(PREFIX):]
    return found if _ID.fullmatch(found) else None


# ------------------------------------------------------------------------------------------------ tokens


def _aead(keys) -> AESGCM:
    return AESGCM(keys.secret("cloud-token-key"))


def _aad(owner: str, conn_id: str) -> bytes:
    return f"pcloud/cloud-token/v1|{owner}|{conn_id}".encode()


def seal_token(keys, owner: str, conn_id: str, token: dict) -> bytes:
    nonce = secrets.token_bytes(12)
    plain = json.dumps({k: token[k] for k in token}, sort_keys=True).encode()
    return nonce + _aead(keys).encrypt(nonce, plain, _aad(owner, conn_id))


def open_token(keys, doc: dict) -> dict:
    sealed = bytes(doc["token"])
    try:
        plain = _aead(keys).decrypt(sealed[:12], sealed[12:], _aad(doc["owner"], doc["_id"]))
    except InvalidTag:
        raise StoreUnavailable(f"{store_name(doc['_id'])}: its tokens do not open with this key store") from None
    return json.loads(plain)


def save_token(db, keys, owner: str, conn_id: str, token: dict) -> None:
    """A refreshed token (Authlib's update_token), sealed like the first one."""
    db.cloud_connections.update_one({"_id": conn_id, "owner": owner},
                                    {"$set": {"token": seal_token(keys, owner, conn_id, token),
                                              "refreshed_at": utcnow()}})


# ------------------------------------------------------------------------------------------------ connect


def _configured(settings) -> None:
    if not settings.gdrive_enabled:
        raise NotConfigured("Google Drive is not configured on this server (PCLOUD_GDRIVE_CLIENT_ID/SECRET)")


def redirect_uri(settings) -> str:
    return f"{settings.public_url}/files/v1/clouds/{PROVIDER}/callback"


def _session(settings) -> OAuth2Session:
    return OAuth2Session(settings.gdrive_client_id, settings.gdrive_client_secret, scope=SCOPE,
                         redirect_uri=redirect_uri(settings), code_challenge_method="S256",
                         token_endpoint_auth_method="client_secret_post",
                         default_timeout=settings.http_timeout_seconds)


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _return_to(settings, value: str | None) -> str | None:
    """Only back to ourselves (no open redirect): a path, or a URL on the public origin."""
    if not value:
        return None
    parts, ours = urlsplit(value), urlsplit(settings.public_url)
    if value.startswith("/") and not value.startswith("//"):
        return f"{settings.public_url}{value}"
    if (parts.scheme, parts.netloc) == (ours.scheme, ours.netloc):
        return value
    raise BadRequest("return_to must be a path or a URL on this server", code="invalid_return_to",
                     details={"allowed_origin": f"{ours.scheme}://{ours.netloc}"})


def start(db, settings, owner: str, return_to: str | None = None) -> dict:
    """The authorize URL to send the person's browser to; the pending connection lives 10 minutes."""
    _configured(settings)
    back = _return_to(settings, return_to)
    verifier = generate_token(48)
    with _session(settings) as session:
        url, state = session.create_authorization_url(settings.gdrive_authorize_url, code_verifier=verifier,
                                                      access_type="offline", prompt="consent",
                                                      include_granted_scopes="true")
    now = utcnow()
    db.cloud_connections.delete_many({"owner": owner, "status": "pending", "expires_at": {"$lt": now}})
    db.cloud_connections.insert_one({"_id": new_id(), "owner": owner, "provider": PROVIDER, "status": "pending",
                                     "state_hash": _state_hash(state), "verifier": verifier, "return_to": back,
                                     "created_at": now, "expires_at": now + PENDING})
    return {"authorize_url": url, "expires_at": iso(now + PENDING), "redirect_uri": redirect_uri(settings)}


def finish(db, keys, settings, params: dict, signed_in: str | None = None) -> tuple[dict, str | None]:
    """The callback: (the connection, where to send the browser). The state is used up by the first try.

    `signed_in` is the PCloud user whose portal session this browser carries, if any. When it is not the person
    who started the link, nothing is exchanged: that is someone who sent their own connect link around hoping a
    victim would consent with the victim's Google account (login CSRF, RFC 6749 §10.12)."""
    _configured(settings)
    state = params.get("state") or ""
    pending = db.cloud_connections.find_one_and_delete({"state_hash": _state_hash(state), "status": "pending"}) \
        if state else None
    if pending is None or as_utc(pending["expires_at"]) < utcnow():
        raise ConnectFailed("this connect link is unknown, used or expired: start again", "invalid_state")
    back = pending.get("return_to")
    if signed_in is not None and signed_in != pending["owner"]:
        log.warning("cloud connect refused: link of %s completed in a browser signed in as %s",
                    pending["owner"], signed_in)
        raise ConnectFailed("this connect link was started by another PCloud account than the one signed in "
                            "here: nothing was connected; start again from your own settings", "account_mismatch",
                            status=403)
    if params.get("error"):
        raise ConnectFailed(f"Google did not grant access: {params['error']}", "access_denied", return_to=back)
    if not params.get("code"):
        raise ConnectFailed("the callback carries no code", "connect_failed", return_to=back)
    try:
        with _session(settings) as session:
            token = session.fetch_token(settings.gdrive_token_url, grant_type="authorization_code",
                                        code=params["code"], code_verifier=pending["verifier"],
                                        timeout=settings.http_timeout_seconds)
    except AuthlibBaseError as exc:
        raise ConnectFailed(f"Google refused the code: {exc.error}", "connect_failed", return_to=back) from None
    except (requests.RequestException, ValueError) as exc:
        raise ConnectFailed(f"Google's token endpoint did not answer ({exc.__class__.__name__})",
                            "provider_unavailable", status=503, return_to=back) from None
    token = dict(token)
    if SCOPE not in str(token.get("scope", "")).split():
        raise ConnectFailed("Google Drive access was not granted (the box was left unticked)", "scope_missing",
                            return_to=back)
    if not token.get("refresh_token"):
        raise ConnectFailed("Google gave no refresh token: remove PCloud's access in the Google account and "
                            "connect again", "connect_failed", return_to=back)
    owner = pending["owner"]
    probe = _drive(settings, token, name=store_name(pending["_id"]))
    try:
        account, folder_id = probe.account(), probe.folder()
    except StoreUnavailable as exc:
        raise ConnectFailed(f"Google Drive did not answer: {exc.message}", "provider_unavailable", status=503,
                            return_to=back) from None
    existing = db.cloud_connections.find_one({"owner": owner, "provider": PROVIDER, "account": account,
                                              "status": {"$in": ["connected", "revoked"]}})
    conn_id = existing["_id"] if existing else pending["_id"]
    now = utcnow()
    db.cloud_connections.update_one(
        {"_id": conn_id},
        {"$set": {"owner": owner, "provider": PROVIDER, "status": "connected", "account": account,
                  "folder_id": folder_id, "token": seal_token(keys, owner, conn_id, token), "rev": new_id(),
                  "connected_at": now, "last_error": None, "revoked_at": None},
         "$setOnInsert": {"created_at": now}}, upsert=True)
    forget(conn_id)
    return db.cloud_connections.find_one({"_id": conn_id}), back


def result_url(back: str, **params) -> str:
    return f"{back}{'&' if urlsplit(back).query else '?'}{urlencode(params)}"


def _drive(settings, token: dict, *, name: str, folder_id: str | None = None, on_token=None,
           on_revoked=None) -> DriveBlobStore:
    session = drive_session(settings.gdrive_client_id, settings.gdrive_client_secret, token,
                            settings.gdrive_token_url, settings.http_timeout_seconds, on_token=on_token)
    return DriveBlobStore(session, api_url=settings.gdrive_api_url, upload_url=settings.gdrive_upload_url,
                          timeout=settings.http_timeout_seconds, folder_id=folder_id, name=name,
                          on_revoked=on_revoked)


# --------------------------------------------------------------------------------------------- the list


def _live(db, owner: str, conn_id: str) -> dict:
    doc = db.cloud_connections.find_one({"_id": conn_id, "owner": owner, "status": {"$in": ["connected",
                                                                                            "revoked"]}}) \
        if isinstance(conn_id, str) else None
    if doc is None:
        raise NotFound("no such cloud connection", code="not_found", details={"id": conn_id})
    return doc


def shape(doc: dict, healthy: bool | None = None) -> dict:
    state = doc["status"]
    if state == "connected" and healthy is False:
        state = "unavailable"
    return {"id": doc["_id"], "provider": doc["provider"], "store": store_name(doc["_id"]),
            "account": doc.get("account"), "state": state, "connected_at": iso(doc.get("connected_at")),
            "revoked_at": iso(doc.get("revoked_at")), "last_error": doc.get("last_error")}


def connections(db, owner: str, healthy=None) -> list[dict]:
    """The owner's connections; `healthy(store name)` says whether the replicated store reached it lately."""
    docs = db.cloud_connections.find({"owner": owner, "status": {"$in": ["connected", "revoked"]}}).sort(
        "connected_at", ASCENDING)
    return [shape(d, healthy(store_name(d["_id"])) if healthy else None) for d in docs]


def store_names(db, owner: str) -> list[str]:
    """What the owner's policies may name (a revoked drive too: reconnecting brings it back)."""
    return [store_name(d["_id"]) for d in db.cloud_connections.find(
        {"owner": owner, "status": {"$in": ["connected", "revoked"]}}, {"_id": 1}).sort("connected_at", ASCENDING)]


def states(db, names: list[str]) -> dict[str, str]:
    """`connected` / `revoked` / `disconnected` per user store name (no such connection any more)."""
    ids = [i for i in (connection_id(n) for n in names) if i]
    found = {d["_id"]: d["status"] for d in db.cloud_connections.find(
        {"_id": {"$in": ids}, "status": {"$in": ["connected", "revoked"]}}, {"status": 1})} if ids else {}
    return {n: found.get(connection_id(n) or "", "disconnected") for n in names if is_user_store(n)}


def summary(db) -> dict:
    """For the admin's storage view: connections by state."""
    counts = {d["_id"]: d["n"] for d in db.cloud_connections.aggregate(
        [{"$match": {"status": {"$in": ["connected", "revoked"]}}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
    return {"connected": counts.get("connected", 0), "revoked": counts.get("revoked", 0)}


def disconnect(db, keys, settings, owner: str, conn_id: str) -> None:
    """Forget the tokens (revoked at Google first, best effort); another user's id is a 404."""
    doc = _live(db, owner, conn_id)
    try:
        token = open_token(keys, doc)
        refresh = token.get("refresh_token") or token.get("access_token")
        if refresh:
            requests.post(settings.gdrive_revoke_url, data={"token": refresh}, timeout=settings.http_timeout_seconds)
    except (requests.RequestException, StoreUnavailable) as exc:
        log.warning("clouds: could not revoke the tokens of %s at Google: %s", conn_id, exc)
    db.cloud_connections.delete_one({"_id": doc["_id"], "owner": owner})
    forget(conn_id)


def mark_revoked(db, conn_id: str, error: str) -> None:
    """Google refuses the grant: the drive's copies stop counting (its blocks go back to repair, degraded)."""
    done = db.cloud_connections.update_one({"_id": conn_id, "status": "connected"},
                                           {"$set": {"status": "revoked", "revoked_at": utcnow(),
                                                     "last_error": f"Google refused the refresh token ({error})"}})
    forget(conn_id)
    if done.modified_count:
        replication.forget_store(db, store_name(conn_id))


# ------------------------------------------------------------------------------------------ the stores


_any_cache: dict[int, tuple[float, bool]] = {}


def any_connected(db) -> bool:
    """Does anyone have a drive? Cached per process for CACHE_SECONDS: when nobody does (most deployments), a read
    that misses the configured stores costs no look-up of per-user holders (two finds per sealed block read)."""
    now = time.monotonic()
    found = _any_cache.get(id(db))
    if found is not None and found[0] > now:
        return found[1]
    value = db.cloud_connections.find_one({"status": {"$in": ["connected", "revoked"]}}, {"_id": 1}) is not None
    _any_cache[id(db)] = (now + CACHE_SECONDS, value)
    return value


def forget(conn_id: str) -> None:
    _any_cache.clear()
    with _cache_lock:
        for key in [k for k in _cache if k[1] == conn_id]:
            del _cache[key]


def store_for(db, keys, settings, name: str) -> DriveBlobStore | None:
    """The DriveBlobStore behind a `gdrive:<id>` name while that connection works; None otherwise."""
    conn_id = connection_id(name)
    if conn_id is None or not settings.gdrive_enabled:
        return None
    key, now = (id(db), conn_id), time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[2]
    doc = db.cloud_connections.find_one({"_id": conn_id, "status": "connected"})
    if doc is None:
        store = None
    elif hit is not None and hit[1] == doc["rev"] and hit[2] is not None:
        store = hit[2]
    else:
        owner = doc["owner"]
        try:
            token = open_token(keys, doc)
        except StoreUnavailable as exc:  # the key store was replaced: the drive is away, never an error here
            log.warning("clouds: %s", exc)
            token = None
        store = None if token is None else _drive(
            settings, token, name=name, folder_id=doc.get("folder_id"),
            on_token=lambda new: save_token(db, keys, owner, conn_id, new),
            on_revoked=lambda error: mark_revoked(db, conn_id, error))
    with _cache_lock:
        _cache[key] = (now + CACHE_SECONDS, doc["rev"] if doc else None, store)
    return store

