"""The one owner of `share_links`: read-only public links to one file or one folder's subtree (issue 19).

A link is a capability: its `token` (32 random URL-safe bytes' worth) is the whole secret of a link without a
password. What a link reaches is decided on every request from the database, never from the request: the link's
own node, or — for a folder link — a live node whose chain of parents reaches that folder without leaving the
owner's tree or passing a trashed folder. Node ids of anything else, `..` in a path, a child of a file link: 404,
the same answer as an id that does not exist, so a link never tells what lies outside it.

Passwords are hashed with scrypt (hashlib, no dependency). A right password buys a short-lived access grant
(Redis, `PCLOUD_REDIS_PREFIX` + `link-access:<grant>`), sent back as a cookie (the page) or a header (the JSON
API); every use re-reads the link, so revoking or expiry ends the grants at once. Wrong passwords count per link
and client address in Redis: `ATTEMPTS_PER_IP` per `ATTEMPT_WINDOW`, and `ATTEMPTS_PER_LINK` from everyone,
then 429 until the window ends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import redis as redis_lib
from pymongo import ASCENDING, ReturnDocument

from functions.files.nodes import get_node
from functions.files.tree import live_key, name_key, now_ms
from runtime.errors import BadRequest, Forbidden, Gone, NotFound, RateLimited, Unauthorized
from runtime.ids import as_utc, iso, new_id
from runtime.mongo import register_indexes

MAX_DAYS = 365
ACCESS_SECONDS = 3600
ATTEMPT_WINDOW = 900
ATTEMPTS_PER_IP = 5
ATTEMPTS_PER_LINK = 50
MAX_PASSWORD_CHARS = 1024
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
MAX_DEPTH = 4096


@register_indexes
def ensure_indexes(db) -> None:
    db.share_links.create_index([("token", ASCENDING)], unique=True)
    db.share_links.create_index([("owner", ASCENDING), ("node_id", ASCENDING)])


# ------------------------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        found = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                               maxmem=64 * 1024 * 1024)
    except (ValueError, UnicodeError):
        return False
    return hmac.compare_digest(found.hex(), digest)


# ---------------------------------------------------------------------------------------- owner's side


def create(db, owner: str, node_id, *, expires_at: datetime | None = None, expires_in: int | None = None,
           password: str | None = None, now: datetime | None = None) -> dict:
    now = now or now_ms()
    node = get_node(db, owner, node_id)
    if node.get("trashed_at") is not None:
        raise NotFound("the node is in the trash", code="not_found", details={"id": node_id})
    if expires_at is not None and expires_in is not None:
        raise BadRequest("give expires_at or expires_in, not both", code="invalid_expiry")
    if expires_in is not None:
        if not 1 <= expires_in <= MAX_DAYS * 86400:
            raise BadRequest(f"expires_in is 1 second to {MAX_DAYS} days", code="invalid_expiry")
        expires_at = now + timedelta(seconds=expires_in)
    if expires_at is not None:
        expires_at = as_utc(expires_at)
        if expires_at <= now or expires_at > now + timedelta(days=MAX_DAYS):
            raise BadRequest(f"expires_at must be in the future, at most {MAX_DAYS} days away",
                             code="invalid_expiry")
    if password is not None and not 1 <= len(password) <= MAX_PASSWORD_CHARS:
        raise BadRequest(f"a password is 1-{MAX_PASSWORD_CHARS} characters", code="invalid_password")
    doc = {"_id": new_id(), "token": secrets.token_urlsafe(32), "owner": owner, "node_id": node["_id"],
           "kind": node["kind"], "created_at": now, "expires_at": expires_at,
           "password_hash": hash_password(password) if password else None, "revoked_at": None,
           "downloads": 0, "last_download_at": None}
    db.share_links.insert_one(doc)
    return doc


def get(db, owner: str, link_id) -> dict:
    doc = db.share_links.find_one({"_id": link_id, "owner": owner}) if isinstance(link_id, str) else None
    if doc is None:
        raise NotFound("no such link, or not yours", code="not_found", details={"id": link_id})
    return doc


def page(db, owner: str, node_id: str | None, after: str | None, limit: int) -> tuple[list[dict], str | None]:
    """The owner's links, by id (stable pages)."""
    query: dict = {"owner": owner}
    if node_id:
        query["node_id"] = node_id
    if after:
        query["_id"] = {"$gt": after}
    docs = list(db.share_links.find(query).sort("_id", ASCENDING).limit(limit + 1))
    return docs[:limit], (docs[limit - 1]["_id"] if len(docs) > limit else None)


def revoke(db, owner: str, link_id, now: datetime | None = None) -> dict:
    get(db, owner, link_id)
    return db.share_links.find_one_and_update({"_id": link_id, "owner": owner, "revoked_at": None},
                                              {"$set": {"revoked_at": now or now_ms()}},
                                              return_document=ReturnDocument.AFTER) or get(db, owner, link_id)


def state(doc: dict, now: datetime) -> str:
    if doc.get("revoked_at") is not None:
        return "revoked"
    expires_at = as_utc(doc.get("expires_at"))
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


def link_json(doc: dict, public_url: str, now: datetime | None = None) -> dict:
    return {"id": doc["_id"], "token": doc["token"], "url": f"{public_url.rstrip('/')}/s/{doc['token']}",
            "node_id": doc["node_id"], "kind": doc["kind"], "state": state(doc, now or now_ms()),
            "created_at": iso(doc.get("created_at")), "expires_at": iso(doc.get("expires_at")),
            "password_required": bool(doc.get("password_hash")), "downloads": int(doc.get("downloads") or 0),
            "last_download_at": iso(doc.get("last_download_at")), "revoked_at": iso(doc.get("revoked_at"))}


# --------------------------------------------------------------------------------------------- public side


def open_link(db, token, now: datetime | None = None) -> dict:
    """The usable link behind `token`: 404 unknown, 410 `link_revoked` / `link_expired`, 404 when its node went."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise NotFound("no such link", code="not_found")
    doc = db.share_links.find_one({"token": token})
    if doc is None:
        raise NotFound("no such link", code="not_found")
    found = state(doc, now or now_ms())
    if found != "active":
        raise Gone(f"this link was {'revoked' if found == 'revoked' else 'valid until ' + iso(doc['expires_at'])}",
                   code=f"link_{found}")
    top = db.nodes.find_one({"_id": doc["node_id"], "owner": doc["owner"]}, {"blocks": 0})
    if top is None or top.get("purged") or top.get("trashed_at") is not None:
        raise NotFound("what this link shared is no longer there", code="not_found")
    return doc


class Access:
    """Password grants and the wrong-password counters, in Redis."""

    def __init__(self, redis, keys):
        self.redis, self.keys = redis, keys

    def grant(self, link: dict) -> str:
        grant = secrets.token_urlsafe(24)
        self.redis.set(self.keys.k("link-access", grant), link["_id"], ex=ACCESS_SECONDS)
        return grant

    def allowed(self, link: dict, grant: str | None) -> bool:
        if not link.get("password_hash"):
            return True
        if not grant or len(grant) > 100:
            return False
        held = self.redis.get(self.keys.k("link-access", grant))
        return held is not None and held.decode() == link["_id"]

    def require(self, link: dict, grant: str | None) -> None:
        if not self.allowed(link, grant):
            raise Unauthorized("this link needs its password", code="password_required")

    def unlock(self, link: dict, password, client: str, now: float) -> str:
        """A grant for the right password; 403 `wrong_password`, 429 `too_many_attempts` past the limits."""
        if not link.get("password_hash"):
            return self.grant(link)
        window = int(now // ATTEMPT_WINDOW)
        per_ip = self.keys.k("link-pw", link["_id"], client, window)
        per_link = self.keys.k("link-pw", link["_id"], window)
        retry = int((window + 1) * ATTEMPT_WINDOW - now) + 1
        try:
            counts = self.redis.mget(per_ip, per_link)
        except redis_lib.RedisError:
            counts = [None, None]  # Redis away: scrypt's cost is what still slows guessing
        if int(counts[0] or 0) >= ATTEMPTS_PER_IP or int(counts[1] or 0) >= ATTEMPTS_PER_LINK:
            raise RateLimited("too many wrong passwords for this link; wait", code="too_many_attempts",
                              details={"retry_after": retry}, headers={"Retry-After": str(retry)})
        if isinstance(password, str) and len(password) <= MAX_PASSWORD_CHARS and \
                check_password(password, link["password_hash"]):
            return self.grant(link)
        pipe = self.redis.pipeline(transaction=False)
        for key in (per_ip, per_link):
            pipe.incr(key)
            pipe.expire(key, ATTEMPT_WINDOW + 1)
        pipe.execute()
        raise Forbidden("wrong password", code="wrong_password")


def reachable(db, link: dict, node_id=None, path=None) -> dict:
    """The node of the link's subtree named by `node_id` or by `path` (relative, `/`-separated), else the link's
    own node. Anything outside — another node, `..`, a child of a file link — is 404 like a missing id."""
    owner = link["owner"]
    outside = NotFound("no such node in this link", code="not_found")
    top = db.nodes.find_one({"_id": link["node_id"], "owner": owner}, {"blocks": 0})
    if node_id not in (None, "") and path not in (None, ""):
        raise BadRequest("name a node by node or by path, not both", code="invalid_request")
    if path not in (None, ""):
        if not isinstance(path, str) or len(path) > 16384:
            raise BadRequest("path is a relative path such as Trip/IMG_1.jpg", code="invalid_path")
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise outside
        node = top
        for part in parts:
            if node is None or node.get("kind") != "folder":
                raise outside
            node = db.nodes.find_one({"owner": owner, "live_key": live_key(node["_id"], name_key(part))},
                                     {"blocks": 0})
        if node is None or node.get("purged") or node.get("trashed_at") is not None:
            raise outside
        return db.nodes.find_one({"_id": node["_id"]})
    if node_id in (None, "") or node_id == link["node_id"]:
        return db.nodes.find_one({"_id": link["node_id"], "owner": owner})
    if link["kind"] != "folder" or not isinstance(node_id, str):
        raise outside
    node = db.nodes.find_one({"_id": node_id, "owner": owner})
    current, depth = node, 0
    while current is not None and depth < MAX_DEPTH:
        if current.get("purged") or current.get("trashed_at") is not None:
            raise outside
        if current["_id"] == link["node_id"]:
            return node
        parent_id = current.get("parent_id")
        current = db.nodes.find_one({"_id": parent_id, "owner": owner}, {"parent_id": 1, "trashed_at": 1,
                                                                          "purged": 1}) if parent_id else None
        depth += 1
    raise outside


def children(db, link: dict, folder: dict, after: str | None, limit: int) -> tuple[list[dict], str | None]:
    if folder.get("kind") != "folder":
        raise NotFound("no such folder in this link", code="not_found")
    query: dict = {"owner": link["owner"], "parent_id": folder["_id"], "trashed_at": None, "purged": {"$ne": True}}
    if after:
        query["name_key"] = {"$gt": after}
    docs = list(db.nodes.find(query, {"blocks": 0}).sort("name_key", ASCENDING).limit(limit + 1))
    return docs[:limit], (docs[limit - 1]["name_key"] if len(docs) > limit else None)


def count_download(db, link: dict, now: datetime | None = None) -> None:
    db.share_links.update_one({"_id": link["_id"]}, {"$inc": {"downloads": 1},
                                                     "$set": {"last_download_at": now or now_ms()}})


def public_node(doc: dict, link: dict) -> dict:
    """What a link shows of a node: no owner, and no parent above the link's own node."""
    return {"id": doc["_id"], "name": doc.get("name", ""), "kind": doc.get("kind"),
            "size": int(doc.get("size") or 0), "content_hash": doc.get("content_hash"), "mtime": iso(doc.get("mtime")),
            "parent_id": None if doc["_id"] == link["node_id"] else doc.get("parent_id")}
