"""files.node.* events (CONTRACT §8) for the event log, appended inside the file write's transaction."""

from __future__ import annotations

from functions.files.paths import path_of
from functions.files.tree import node_json
from runtime import events


def record(db, owner: str, action: str, docs: list[dict], session) -> None:
    """One `files.node.<action>` per node, with `data.node` (§3 shape) and `data.path`."""
    if not docs:
        return
    cache: dict[str, str] = {}
    items = [{"type": f"files.node.{action}", "subject": d["_id"],
              "data": {"node": node_json(d), "path": path_of(db, owner, d, session, cache)}} for d in docs]
    events.append_many(db, owner=owner, items=items, session=session)
