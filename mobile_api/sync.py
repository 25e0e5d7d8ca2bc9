"""The changes feed (CONTRACT §5): the latest state of every node changed after a cursor, in change order.

Every write to a user's tree takes the next `users.seq` inside its own transaction and stamps it on the node.
Because that `$inc` makes concurrent writers of one user conflict, sequence order is commit order: a reader
that has seen seq N has seen everything below N, so paging by `seq > cursor` never skips a late commit.
The cursor is opaque to clients (base64 of the seq); purges raise `users.journal_floor`, and a cursor below
the floor is 410 `cursor_expired` (the client starts over without a cursor).
"""

from __future__ import annotations

import base64
import binascii
import json

from pymongo import ASCENDING

from functions.files import service as files
from runtime.cursor import decode_cursor, encode_cursor
from runtime.errors import BadRequest, Gone, NotFound
from runtime.ids import iso, utcnow
from runtime.mongo import register_indexes

__all__ = ["encode_cursor", "decode_cursor", "node_view", "changes", "current_cursor"]


@register_indexes
def _indexes(db) -> None:
    db.nodes.create_index([("owner", ASCENDING), ("seq", ASCENDING)])


def node_view(doc: dict) -> dict:
    """The contract's node shape (CONTRACT §3)."""
    view = {"id": doc["_id"], "parent_id": doc.get("parent_id"), "name": doc.get("name"), "kind": doc.get("kind"),
            "rev": doc.get("rev", 0), "size": doc.get("size", 0), "content_hash": doc.get("content_hash"),
            "mtime": iso(doc.get("mtime")), "trashed_at": iso(doc.get("trashed_at"))}
    if doc.get("metadata"):  # user metadata (functions/files/metadata.py keeps it as JSON text)
        view["metadata"] = json.loads(doc["metadata"])
    if doc.get("purged"):
        view["purged"] = True
    return view


_FIELDS = {"blocks": 0, "live_key": 0, "name_key": 0}


def changes(db, owner: str, cursor: str | None = None, limit: int = 500, session=None) -> dict:
    """One page of the feed: the user's own tree, then the folders shared with them (functions/files/shares.py).

    Without shares the cursor is the plain journal cursor it always was; with shares it also carries one
    position per share (`m1:` + JSON), so a new share arrives whole and a revoked one as its folder trashed."""
    own, positions = _split(cursor)
    page = _own_changes(db, owner, own, limit, session)
    if page["has_more"]:
        if positions:
            page["cursor"] = _join(page["cursor"], positions)
        return page
    shared, kept, more = files.shared_feed(db, owner, positions or {}, limit - len(page["changes"]), node_view,
                                           utcnow())
    if not kept and not shared and not positions:
        return page
    page["changes"] += shared
    page["has_more"] = more
    page["cursor"] = _join(page["cursor"], kept)
    return page


_SHARED_PREFIX = "m1:"


def _join(own: str, positions: dict) -> str:
    if not positions:
        return own
    raw = _SHARED_PREFIX + json.dumps({"o": own, "s": positions}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _split(cursor: str | None) -> tuple[str | None, dict | None]:
    """(the own-tree cursor, the share positions or None) of a cursor this server handed out."""
    if not cursor or len(cursor) > 65536:
        return cursor, None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return cursor, None
    if not raw.startswith(_SHARED_PREFIX):
        return cursor, None
    try:
        data = json.loads(raw[len(_SHARED_PREFIX):])
        own, positions = data["o"], data["s"]
        valid = isinstance(own, str) and isinstance(positions, dict) and all(
            isinstance(k, str) and isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
            and isinstance(v[1], int) and not isinstance(v[1], bool) for k, v in positions.items())
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise BadRequest("cursor is not one this server handed out", code="invalid_cursor")
    return own, positions


def _own_changes(db, owner: str, cursor: str | None, limit: int, session=None) -> dict:
    """One page of the user's own tree: reads one index range, never the whole tree."""
    after = decode_cursor(cursor)
    user = db.users.find_one({"_id": owner}, {"seq": 1, "journal_floor": 1}, session=session)
    if user is None:
        raise NotFound("no such user", code="not_found")
    if cursor and after < int(user.get("journal_floor") or 0):
        raise Gone("the journal no longer reaches back to this cursor; sync again without one",
                   code="cursor_expired", details={"journal_floor": encode_cursor(user.get("journal_floor") or 0)})
    if after > int(user.get("seq") or 0):
        raise BadRequest("cursor is ahead of this account's journal", code="invalid_cursor")
    top = int(user.get("seq") or 0)
    docs: list[dict] = []
    low, window = after, limit + 1
    while len(docs) <= limit and low < top:
        # a bounded seq range per query: the server then walks only that slice of the (owner, seq) index,
        # never everything after the cursor; the range doubles across holes left by nodes changed again
        high = min(top, low + window)
        docs += db.nodes.find({"owner": owner, "seq": {"$gt": low, "$lte": high}}, _FIELDS, session=session) \
            .sort("seq", ASCENDING).limit(limit + 1 - len(docs))
        low, window = high, window * 2
    has_more = len(docs) > limit
    docs = docs[:limit]
    # every seq up to `top` was committed before we read it (it is taken inside the writing transaction)
    last = docs[-1]["seq"] if has_more else max(top, after)
    return {"changes": [node_view(d) for d in docs], "cursor": encode_cursor(last), "has_more": has_more}


def current_cursor(db, owner: str, session=None) -> str:
    """The cursor that covers everything committed so far (returned by the ops endpoint)."""
    user = db.users.find_one({"_id": owner}, {"seq": 1}, session=session) or {}
    return encode_cursor(int(user.get("seq") or 0))
