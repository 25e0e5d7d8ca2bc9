"""Storage policy per folder (issue 19): how many copies (`replicas`), on which stores (`stores`), and whether
blocks are encrypted at rest (`encryption`). Collection `folder_policies`, owned here.

A folder's own policy sets any of the three fields; an unset field is inherited from the nearest ancestor that
sets it, and the root's defaults are `replicas: 1`, any store, `encryption: none`. A file follows its folder.
Setting a policy records a `policy_changes` item: the placement worker (replication.py) re-evaluates the
folder's subtree in the background — copying, trimming, sealing or unsealing — so the request stays cheap.
"""

from __future__ import annotations

from pymongo import ASCENDING

from functions.files.nodes import MAX_DEPTH, get_node
from functions.files.tree import now_ms
from runtime.errors import BadRequest, Conflict
from runtime.mongo import register_indexes
from runtime.store.gdrive import is_user_store

FIELDS = ("replicas", "stores", "encryption")
ENCRYPTIONS = ("none", "at_rest")
DEFAULTS = {"replicas": 1, "stores": None, "encryption": "none"}


@register_indexes
def ensure_indexes(db) -> None:
    db.folder_policies.create_index([("owner", ASCENDING)])
    db.policy_changes.create_index([("at", ASCENDING)])


def _invalid(message: str, code: str, **details) -> BadRequest:
    return BadRequest(message, code=code, details=details)


def validate(change: dict, known_stores: list[str], inherited: dict) -> dict:
    """The folder's new own fields, checked against the configured stores and what it would inherit.

    400 `invalid_policy` (types), `unknown_store` (details.unknown, details.known), `too_many_replicas`
    (more copies than the stores the policy may use)."""
    own = {}
    unknown_fields = set(change) - set(FIELDS)
    if unknown_fields:
        raise _invalid(f"a policy has {', '.join(FIELDS)}", "invalid_policy", fields=sorted(unknown_fields))
    replicas = change.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1):
        raise _invalid("replicas is a whole number of copies, at least 1 (null: inherit)", "invalid_policy",
                       field="replicas")
    stores = change.get("stores")
    if stores is not None:
        if not isinstance(stores, list) or not stores or not all(isinstance(s, str) for s in stores):
            raise _invalid("stores is a non-empty list of store names (null: any store)", "invalid_policy",
                           field="stores")
        if len(set(stores)) != len(stores):
            raise _invalid("a store is named twice", "invalid_policy", field="stores")
        unknown = [s for s in stores if s not in known_stores]
        if unknown:
            raise _invalid(f"no such store: {', '.join(unknown)}", "unknown_store", unknown=unknown,
                           known=known_stores)
    encryption = change.get("encryption")
    if encryption is not None and encryption not in ENCRYPTIONS:
        raise _invalid("encryption is none or at_rest", "invalid_policy", field="encryption",
                       allowed=list(ENCRYPTIONS))
    own = {f: change.get(f) for f in FIELDS}
    effective = {f: own[f] if own[f] is not None else inherited[f] for f in FIELDS}
    # `replicas` counts copies on the server's stores; each drive of the owner's it names is one copy more
    server = [s for s in known_stores if not is_user_store(s)]
    usable = [s for s in effective["stores"] or server if not is_user_store(s)] or server
    if effective["replicas"] > len(usable):
        raise _invalid(f"{effective['replicas']} copies need as many stores; the policy may use {len(usable)}",
                       "too_many_replicas", replicas=effective["replicas"], stores=usable)
    return own


def chain(db, owner: str, folder: dict, cache: dict | None = None) -> list[dict]:
    """The folder and its ancestors up to the root (nearest first)."""
    found, current, depth = [], folder, 0
    while current is not None and depth < MAX_DEPTH:
        found.append(current)
        parent_id = current.get("parent_id")
        if parent_id is None:
            break
        if cache is not None and ("node", parent_id) in cache:
            current = cache[("node", parent_id)]
        else:
            current = db.nodes.find_one({"_id": parent_id, "owner": owner}, {"parent_id": 1, "kind": 1})
            if cache is not None:
                cache[("node", parent_id)] = current
        depth += 1
    return found


def resolve(db, owner: str, node: dict, cache: dict | None = None) -> dict:
    """The effective policy of a node (a file: its folder's) with, per field, the folder it comes from."""
    cache = {} if cache is None else cache
    folder_id = node["_id"] if node.get("kind") == "folder" else node.get("parent_id")
    key = ("policy", folder_id)
    if key in cache:
        return cache[key]
    folder = node if node.get("kind") == "folder" else (
        db.nodes.find_one({"_id": folder_id, "owner": owner}, {"parent_id": 1, "kind": 1}) if folder_id else None)
    folders = chain(db, owner, folder, cache) if folder is not None else []
    ids = [f["_id"] for f in folders]
    own = {d["_id"]: d for d in db.folder_policies.find({"_id": {"$in": ids}, "owner": owner})} if ids else {}
    effective = dict(DEFAULTS)
    source = {f: None for f in FIELDS}
    for field in FIELDS:
        for folder_id_ in ids:
            value = (own.get(folder_id_) or {}).get(field)
            if value is not None:
                effective[field], source[field] = value, folder_id_
                break
    result = {**effective, "inherited_from": source}
    cache[key] = result
    return result


def get_policy(db, owner: str, node_id, known_stores: list[str]) -> dict:
    node = get_node(db, owner, node_id)
    return _shape(db, owner, node, known_stores)


def _shape(db, owner: str, node: dict, known_stores: list[str]) -> dict:
    own = db.folder_policies.find_one({"_id": node["_id"], "owner": owner}) or {}
    effective = resolve(db, owner, node)
    return {"node_id": node["_id"], "own": {f: own.get(f) for f in FIELDS},
            "effective": {f: effective[f] for f in FIELDS}, "inherited_from": effective["inherited_from"],
            "stores_available": known_stores}


def set_policy(db, owner: str, node_id, change: dict, known_stores: list[str]) -> dict:
    """Replace a folder's own policy (null fields inherit) and queue its subtree for re-placement."""
    node = get_node(db, owner, node_id)
    if node["kind"] != "folder":
        raise Conflict("a policy belongs to a folder; a file follows its folder", code="not_a_folder",
                       details={"id": node_id})
    if not isinstance(change, dict):
        raise _invalid("a policy is a JSON object", "invalid_policy")
    parent = db.nodes.find_one({"_id": node["parent_id"], "owner": owner}) if node.get("parent_id") else None
    inherited = {f: v for f, v in (resolve(db, owner, parent) if parent else DEFAULTS).items() if f in FIELDS}
    own = validate(change, known_stores, inherited)
    now = now_ms()
    if all(v is None for v in own.values()):
        db.folder_policies.delete_one({"_id": node["_id"], "owner": owner})
    else:
        db.folder_policies.update_one({"_id": node["_id"]}, {"$set": {"owner": owner, **own, "updated_at": now}},
                                      upsert=True)
    db.policy_changes.insert_one({"owner": owner, "folder_id": node["_id"], "at": now})
    return _shape(db, owner, node, known_stores)


def subtree_files(db, owner: str, folder_id: str, batch: int = 500):
    """Every file below a folder (trashed ones too: they may come back), folder by folder."""
    frontier = [folder_id]
    while frontier:
        children = list(db.nodes.find({"owner": owner, "parent_id": {"$in": frontier[:batch]},
                                       "purged": {"$ne": True}}, {"kind": 1}))
        frontier = frontier[batch:] + [c["_id"] for c in children if c["kind"] == "folder"]
        yield from (c["_id"] for c in children if c["kind"] == "file")


def for_upload(db, owner: str, node: dict) -> dict:
    """The effective fields an upload into `node` (its folder, or the file it overwrites) follows: where its
    blocks are acknowledged (`stores`) and whether commit asks for sealing at once (`encryption`). One indexed
    lookup when the owner has set no policy anywhere (most users), so negotiation stays cheap."""
    if db.folder_policies.find_one({"owner": owner}, {"_id": 1}) is None:
        return dict(DEFAULTS)
    effective = resolve(db, owner, node)
    return {f: effective[f] for f in FIELDS}
