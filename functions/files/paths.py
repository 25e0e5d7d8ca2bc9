"""Paths of nodes: `/Camera/IMG_1.jpg` from a node (for events and search) and a node from a path (GET /files/v1/path).

A path is the names from the root down, `/`-separated; the root is `/`. Lookup is by `name_key`, so it is as
case-insensitive as names are unique; a trashed node has no path that resolves.
"""

from __future__ import annotations

from functions.files.tree import ROOT_LIVE_KEY, live_key, name_key
from runtime.errors import BadRequest, NotFound

MAX_DEPTH = 4096
MAX_PATH_CHARS = 16384


def path_of(db, owner: str, doc: dict, session=None, cache: dict | None = None) -> str:
    """The node's path. `cache` (folder id → path) is filled with every folder walked through, so a batch of
    nodes in the same folders costs one walk (the mobile bulk path: 100 renames, 2 lookups, not 200)."""
    cache = {} if cache is None else cache
    names, walked, current, seen, base = [], [], doc, 0, "/"
    while current is not None and current.get("parent_id") is not None and seen < MAX_DEPTH:
        names.append(current.get("name", ""))
        parent_id = current["parent_id"]
        if parent_id in cache:
            base = cache[parent_id]
            break
        current = db.nodes.find_one({"_id": parent_id, "owner": owner}, {"name": 1, "parent_id": 1},
                                    session=session)
        if current is not None:
            walked.append((parent_id, len(names)))  # its own name is names[len(names)] once appended
        seen += 1
    path = base.rstrip("/") + "/" + "/".join(reversed(names)) if names else base
    for folder_id, depth in walked:
        above = names[depth:]
        cache[folder_id] = base.rstrip("/") + "/" + "/".join(reversed(above)) if above else base
    if doc.get("kind") == "folder":
        cache[doc["_id"]] = path
    return path


def resolve(db, owner: str, path) -> dict:
    """The live node at `path`, or 404."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH_CHARS:
        raise BadRequest("path must be an absolute path such as /Camera/IMG_1.jpg", code="invalid_path",
                         details={"path": path})
    node = db.nodes.find_one({"owner": owner, "live_key": ROOT_LIVE_KEY})
    for part in [p for p in path.split("/") if p]:
        if node is None or node.get("kind") != "folder":
            node = None
            break
        node = db.nodes.find_one({"owner": owner, "live_key": live_key(node["_id"], name_key(part))})
    if node is None or node.get("purged") or node.get("trashed_at") is not None:
        raise NotFound("nothing at that path", code="not_found", details={"path": path})
    return node


def owners(db) -> list[str]:
    """Every user with a tree (a root folder)."""
    return sorted(db.nodes.distinct("owner", {"live_key": ROOT_LIVE_KEY}))


def count_live(db, owner: str | None = None) -> int:
    query = {"trashed_at": None, "purged": {"$ne": True}, "parent_id": {"$ne": None}}
    if owner is not None:
        query["owner"] = owner
    return db.nodes.count_documents(query)


def iter_live(db, owner: str):
    """(node, path) of every live node of `owner` below the root, parents before children (a rebuild's source)."""
    root = db.nodes.find_one({"owner": owner, "live_key": ROOT_LIVE_KEY})
    if root is None:
        return
    frontier = {root["_id"]: "/"}
    while frontier:
        next_frontier: dict[str, str] = {}
        ids = list(frontier)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for doc in db.nodes.find({"owner": owner, "parent_id": {"$in": chunk}, "trashed_at": None,
                                      "purged": {"$ne": True}}, {"blocks": 0}):
                path = frontier[doc["parent_id"]].rstrip("/") + "/" + doc.get("name", "")
                if doc.get("kind") == "folder":
                    next_frontier[doc["_id"]] = path
                yield doc, path
        frontier = next_frontier
