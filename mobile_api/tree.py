"""Reads the ops referee needs beyond the files service: ancestors, the live holder of a name.

Writes go through functions/files/service.py (which owns names, revisions, `users.seq` and trash groups).
"""

from __future__ import annotations

from functions.files.service import ensure_root, live_key, name_key

__all__ = ["chain", "ensure_root", "get", "in_trash", "live_child"]
MAX_DEPTH = 4096


def get(db, owner: str, node_id, session=None) -> dict | None:
    if not isinstance(node_id, str):
        return None
    return db.nodes.find_one({"_id": node_id, "owner": owner}, {"blocks": 0}, session=session)


def chain(db, owner: str, node: dict, session=None) -> list[dict]:
    """The node's ancestors, parent first, up to the root."""
    out, seen, parent_id = [], {node["_id"]}, node.get("parent_id")
    while parent_id is not None and len(out) < MAX_DEPTH:
        parent = db.nodes.find_one({"_id": parent_id, "owner": owner}, {"blocks": 0}, session=session)
        if parent is None or parent["_id"] in seen:
            break
        seen.add(parent["_id"])
        out.append(parent)
        parent_id = parent.get("parent_id")
    return out


def in_trash(node: dict, lineage: list[dict]) -> bool:
    return node.get("trashed_at") is not None or any(a.get("trashed_at") is not None for a in lineage)


def live_child(db, owner: str, parent_id: str, name: str, session=None) -> dict | None:
    return db.nodes.find_one({"owner": owner, "live_key": live_key(parent_id, name_key(name))}, {"blocks": 0},
                             session=session)
