"""Search (CONTRACT §9) as plain Python: the process-wide index, the query, and turning log events into documents.

What the graph's `search` resolver calls: `index_for(settings)` and `search(index, owner, q, types, limit, cursor)`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading

from functions.search.backends import make_index
from functions.search.index import SearchDoc, SearchIndex, SearchUnavailable
from functions.search.query import QueryError, parse
from runtime.errors import BadRequest, Unavailable

FILES_TYPE = "files.node"
MAX_LIMIT = 500  # the graph's `first` goes up to 500 too
_indexes: dict[str, SearchIndex] = {}
_lock = threading.Lock()


def index_for(settings) -> SearchIndex:
    """One index object per process and backend location (it holds connections)."""
    key = settings.search_url or str(settings.data_dir)
    with _lock:
        found = _indexes.get(key)
        if found is None:
            found = _indexes[key] = make_index(settings)
        return found


def forget_index(settings) -> None:
    key = settings.search_url or str(settings.data_dir)
    with _lock:
        found = _indexes.pop(key, None)
    if found is not None:
        found.close()


def visible_types(ident, types: list[str] | None) -> list[str] | None:
    """What a caller may search: a user everything; an app invocation only the types its owner granted `read`
    (and file names when it holds files.read). None = no restriction, [] = nothing."""
    if getattr(ident, "app", None) is None:
        return types
    grants = getattr(ident, "grants", None) or {}
    allowed = {t for t, rights in (grants.get("types") or {}).items() if "read" in rights}
    if "files.read" in (grants.get("actions") or []):
        allowed.add(FILES_TYPE)
    return sorted(allowed if types is None else allowed.intersection(types))


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["o"]
        if not isinstance(offset, int) or offset < 0 or offset > 100_000:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest("cursor is not one this API gave out", code="invalid_cursor") from None


def search(index: SearchIndex, owner: str, q: str, types: list[str] | None, limit: int,
           cursor: str | None) -> tuple[list[dict], str | None]:
    """The owner's hits `{"id","type","score"}` best first (+ `fields`, what was indexed), and the next cursor."""
    try:
        query = parse(q)
    except QueryError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_parameter",
                         details={"parameter": "limit"})
    offset = decode_cursor(cursor)
    try:
        hits = index.search(owner, query, list(types) if types else None, limit + 1, offset)
    except SearchUnavailable as exc:
        raise Unavailable("search is unavailable; try again", details={"dependency": "search",
                                                                       "reason": str(exc)}) from exc
    more = len(hits) > limit
    items = [{"id": h.id, "type": h.type, "score": h.score, "fields": h.fields, "node": h.node}
             for h in hits[:limit]]
    return items, (encode_cursor(offset + limit) if more else None)


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def metadata_fields(metadata) -> dict[str, str]:
    """A file's user metadata as search fields: `metadata` holds every key and scalar value (free words), and
    each top-level scalar under a plain key is also `meta_<key>` so `meta_project:apollo` matches exactly."""
    if not isinstance(metadata, dict) or not metadata:
        return {}
    words: list[str] = []
    fields: dict[str, str] = {}

    def walk(value, key: str | None = None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                words.append(str(k))
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif value is not None and not isinstance(value, bool):
            words.append(str(value))

    walk(metadata)
    for key, value in metadata.items():
        if _FIELD_NAME.match(key) and isinstance(value, str | int | float) and not isinstance(value, bool):
            fields[f"meta_{key}"] = str(value)
    fields["metadata"] = " ".join(words)
    return fields


def documents_from(events: list[dict]) -> tuple[list[SearchDoc], list[tuple[str, str, int]]]:
    """Log events → (documents to index, (owner, id, seq) to delete). Events of other types are ignored."""
    upserts: list[SearchDoc] = []
    deletes: list[tuple[str, str, int]] = []
    for ev in events:
        kind, _, action = ev["type"].rpartition(".")
        data = ev.get("data") or {}
        if kind == "files.node":
            if action in ("trashed", "purged"):
                deletes.append((ev["owner"], ev["subject"], ev["seq"]))
            else:
                node = data.get("node") or {}
                fields = {"name": node.get("name") or "", "path": data.get("path") or "",
                          **metadata_fields(node.get("metadata"))}
                upserts.append(SearchDoc(ev["owner"], ev["subject"], FILES_TYPE, ev["seq"], fields, node or None))
        elif kind == "graph.node":
            texts = {k: str(v) for k, v in (data.get("search") or {}).items() if v not in (None, "")}
            if action == "deleted" or not texts:
                deletes.append((ev["owner"], ev["subject"], ev["seq"]))
            else:
                upserts.append(SearchDoc(ev["owner"], ev["subject"], ev.get("node_type") or "graph.node",
                                         ev["seq"], texts, data.get("node")))
    return upserts, deletes


def apply_events(index: SearchIndex, events: list[dict]) -> int:
    """Keep the index current with a batch of events (idempotent, any order: the seq guard decides)."""
    upserts, deletes = documents_from(events)
    if upserts:
        index.upsert(upserts)
    by_owner: dict[str, list[tuple[str, int]]] = {}
    for owner, doc_id, seq in deletes:
        by_owner.setdefault(owner, []).append((doc_id, seq))
    for owner, items in by_owner.items():
        index.delete(owner, items)
    return len(upserts) + len(deletes)
