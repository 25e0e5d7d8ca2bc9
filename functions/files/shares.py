"""The one owner of `folder_shares`: a folder shared with another user or a group, read or read-write (issue 19).

The shared subtree stays in its owner's tree: a sharee's reads and writes run as the owner (the same services,
the owner's journal, events and devices), and `acting_owner` is the one place that decides whether a caller may
act on a node that is not theirs — the node must lie at or below a folder shared with the caller (directly or
through one of their groups, read at the time of use), and a write needs a `write` share (else 403
`read_only_share`). Anything else keeps answering exactly what it answered before: the caller's own lookup, so
another user's node stays 404. The share's folder itself is the sharee's mount point: they see it at their root
(`parent_id` = their root), and may not rename, move or trash it (403 `share_root`) — only its owner may.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING

from functions.files.tree import ensure_root
from runtime import events, folder_shares, groups
from runtime.errors import BadRequest, Conflict, Forbidden, NotFound
from runtime.ids import iso, new_id

ROLES = ("read", "write")
MAX_DEPTH = 4096
ensure_indexes = folder_shares.ensure_indexes  # the collection's queries live in runtime/folder_shares.py


# ---------------------------------------------------------------------------------------------- owner's side


def create(db, owner: str, folder: dict, *, user_id=None, email=None, group_id=None, role="read",
           now: datetime) -> dict:
    if role not in ROLES:
        raise BadRequest("role is read or write", code="invalid_role")
    if folder["kind"] != "folder":
        raise Conflict("only folders are shared with people (share a file with a link)", code="not_a_folder")
    if folder.get("parent_id") is None:
        raise BadRequest("the root folder cannot be shared; share a folder in it", code="root_immutable")
    if folder.get("trashed_at") is not None:
        raise Conflict("the folder is in the trash", code="trashed")
    named = [x for x in (user_id, email, group_id) if x is not None]
    if len(named) != 1:
        raise BadRequest("name exactly one of user_id, email or group_id", code="invalid_grantee")
    if group_id is not None:
        if groups.get(db, group_id) is None:
            raise NotFound("no such group", code="unknown_group", details={"group_id": group_id})
        kind, grantee = "group", group_id
    else:
        user = db.users.find_one({"_id": user_id} if user_id is not None else {"email": str(email).lower()},
                                 {"_id": 1})
        if user is None:
            raise NotFound("no such user", code="unknown_user")
        if user["_id"] == owner:
            raise BadRequest("the folder is already yours", code="invalid_grantee")
        kind, grantee = "user", user["_id"]
    existing = folder_shares.find_grant(db, owner, folder["_id"], kind, grantee)
    if existing is not None:  # sharing again changes the role
        folder_shares.set_role(db, existing["_id"], role, now)
        doc = {**existing, "role": role}
    else:
        doc = {"_id": new_id(), "owner": owner, "folder_id": folder["_id"], "grantee_type": kind,
               "grantee_id": grantee, "role": role, "created_at": now, "updated_at": now}
        folder_shares.insert(db, doc)
    _changed(db, doc, "shared")
    return doc


def _changed(db, share: dict, change: str) -> None:
    """Tell the grantee's phones to sync (push/sharing.py): the folder arrives in, or leaves, their feed."""
    events.emit(db, "share.changed", share["owner"], {"share_id": share["_id"], "folder_id": share["folder_id"],
                                                      "grantee_type": share["grantee_type"],
                                                      "grantee_id": share["grantee_id"], "change": change})


def for_folder(db, owner: str, folder_id: str) -> list[dict]:
    return folder_shares.for_folder(db, owner, folder_id)


def revoke(db, owner: str, share_id) -> dict:
    doc = folder_shares.get_owned(db, owner, share_id)
    if doc is None:
        raise NotFound("no such share, or not yours", code="not_found")
    folder_shares.delete(db, doc["_id"])
    _changed(db, doc, "revoked")
    return doc


# ----------------------------------------------------------------------------------------------- sharee's side


def shared_with(db, user_id: str) -> list[dict]:
    """The shares that reach `user_id` (directly or through a group), one per folder, the strongest role."""
    grantees = [user_id, *groups.group_ids_for(db, user_id)]
    best: dict[str, dict] = {}
    for doc in folder_shares.reaching(db, grantees):
        if doc["owner"] == user_id:
            continue
        held = best.get(doc["folder_id"])
        if held is None or (held["role"] == "read" and doc["role"] == "write"):
            best[doc["folder_id"]] = doc
    return list(best.values())


def covering(db, user_id: str, node: dict) -> dict | None:
    """The share through which `user_id` reaches `node` (at or above it in its owner's tree), or None."""
    by_folder = {s["folder_id"]: s for s in shared_with(db, user_id) if s["owner"] == node.get("owner")}
    if not by_folder:
        return None
    current, depth = node, 0
    while current is not None and depth < MAX_DEPTH:
        if current["_id"] in by_folder:
            return by_folder[current["_id"]]
        parent_id = current.get("parent_id")
        current = db.nodes.find_one({"_id": parent_id, "owner": node["owner"]}, {"parent_id": 1}) \
            if parent_id else None
        depth += 1
    return None


def acting_owner(db, caller: str, node_id, *, write: bool = False, moving: bool = False) -> str:
    """Whose tree a request by `caller` on `node_id` runs in: the caller's own (also when the node is unknown or
    not shared with them: the service then answers its usual 404), or the owner's through a share."""
    return access(db, caller, node_id, write=write, moving=moving)[0]


def access(db, caller: str, node_id, *, write: bool = False, moving: bool = False) -> tuple[str, dict | None]:
    """`acting_owner` with the share it went through: (owner, share), or (caller, None) for anything that is not
    someone else's node shared with the caller. Raises 403 `read_only_share` / `share_root` as acting_owner does."""
    if not isinstance(node_id, str) or not node_id:
        return caller, None
    node = db.nodes.find_one({"_id": node_id}, {"owner": 1, "parent_id": 1, "purged": 1})
    if node is None or node["owner"] == caller or node.get("purged"):
        return caller, None
    share = covering(db, caller, node)
    if share is None:
        return caller, None
    if write and share["role"] != "write":
        raise Forbidden("this folder is shared with you read-only", code="read_only_share",
                        details={"share_id": share["_id"]})
    if moving and node["_id"] == share["folder_id"]:
        raise Forbidden("only its owner renames, moves or trashes a shared folder", code="share_root",
                        details={"share_id": share["_id"]})
    return node["owner"], share


def upload_owner(db, caller: str, upload_id) -> str:
    """Whose upload `upload_id` is for the caller: theirs, or a sharer's that they negotiated into a folder shared
    with them read-write (the same check as the negotiation)."""
    return upload_access(db, caller, upload_id)[0]


def upload_access(db, caller: str, upload_id) -> tuple[str, dict | None]:
    """`upload_owner` with the share it went through (None for the caller's own or an unknown upload)."""
    upload = db.uploads.find_one({"_id": upload_id}, {"owner": 1, "node_id": 1, "parent_id": 1}) \
        if isinstance(upload_id, str) else None
    if upload is None or upload["owner"] == caller:
        return caller, None
    owner, share = access(db, caller, upload.get("node_id") or upload.get("parent_id"), write=True)
    return (owner, share) if owner == upload["owner"] else (caller, None)


def mount_view(db, caller: str, view: dict, doc: dict) -> dict:
    """A shared folder as its sharee sees it: at their root, with who shared it and how."""
    if doc.get("owner") == caller:
        return view
    share = next((s for s in shared_with(db, caller) if s["folder_id"] == doc["_id"]), None)
    if share is None:
        return view
    return {**view, "parent_id": ensure_root(db, caller)["_id"],
            "shared": {"share_id": share["_id"], "owner_id": share["owner"], "role": share["role"]}}


def share_json(doc: dict) -> dict:
    return {"id": doc["_id"], "folder_id": doc["folder_id"], "owner_id": doc["owner"],
            "grantee_type": doc["grantee_type"], "grantee_id": doc["grantee_id"], "role": doc["role"],
            "created_at": iso(doc.get("created_at"))}


# ------------------------------------------------------------------------------------------------ sync feed


def feed(db, caller: str, positions: dict, limit: int, view, now: datetime) -> tuple[list[dict], dict, bool]:
    """The shared part of `caller`'s changes feed (CONTRACT §5): for every folder shared with them, the owner's
    nodes in it changed since the position the caller's cursor holds for that share (a new share: everything),
    and for every share in the cursor that no longer reaches its folder, the folder as trashed (the client drops
    it and what is below). Returns (changes, new positions `{share_id: [folder_id, seq]}`, has_more).

    Each owner's journal is read in seq order, so a position is exact; a node the owner moves out of a shared
    folder is not reported to the sharee (they keep its last state until they sync without a cursor)."""
    active = shared_with(db, caller)
    folders = {s["folder_id"] for s in active}
    root_id = ensure_root(db, caller)["_id"] if active or positions else None
    out: list[dict] = []
    kept: dict = {}
    for share_id, (folder_id, _) in positions.items():
        if folder_id in folders:
            continue
        gone = db.nodes.find_one({"_id": folder_id}, {"blocks": 0}) or {"_id": folder_id, "kind": "folder"}
        out.append({**view(gone), "parent_id": root_id, "trashed_at": now.isoformat().replace("+00:00", "Z"),
                    "shared": {"share_id": share_id, "revoked": True}})
    more = False
    for share in active:
        start = positions.get(share["_id"], [share["folder_id"], 0])[1]
        room = limit - len(out)
        if room <= 0:
            kept[share["_id"]] = [share["folder_id"], start]
            more = True
            continue
        items, last, done = _share_changes(db, share, start, room)
        for doc in items:
            shown = view(doc)
            if doc["_id"] == share["folder_id"]:
                shown = {**shown, "parent_id": root_id,
                         "shared": {"share_id": share["_id"], "owner_id": share["owner"], "role": share["role"]}}
            out.append(shown)
        kept[share["_id"]] = [share["folder_id"], last]
        more = more or not done
    return out, kept, more


def _share_changes(db, share: dict, after: int, room: int) -> tuple[list[dict], int, bool]:
    """Up to `room` nodes of the share's subtree changed after seq `after`: (docs, position, reached the end)."""
    owner, top_id = share["owner"], share["folder_id"]
    user = db.users.find_one({"_id": owner}, {"seq": 1}) or {}
    top = int(user.get("seq") or 0)
    inside: dict[str, bool] = {top_id: True}
    found: list[dict] = []
    position = after
    while position < top:
        batch = list(db.nodes.find({"owner": owner, "seq": {"$gt": position}}, {"blocks": 0, "live_key": 0})
                     .sort("seq", ASCENDING).limit(max(room * 2, 100)))
        if not batch:
            break
        for doc in batch:
            if _within(db, owner, doc, top_id, inside):
                if len(found) == room:
                    return found, position, False
                found.append(doc)
            position = doc["seq"]
    return found, max(position, top), True


def _within(db, owner: str, doc: dict, top_id: str, inside: dict[str, bool]) -> bool:
    """Is `doc` the shared folder or below it? `inside` caches the answer per folder id."""
    chain, current, depth = [], doc, 0
    answer = False
    while current is not None and depth < MAX_DEPTH:
        if current["_id"] in inside:
            answer = inside[current["_id"]]
            break
        chain.append(current["_id"])
        parent_id = current.get("parent_id")
        if parent_id is None:
            break
        current = db.nodes.find_one({"_id": parent_id, "owner": owner}, {"parent_id": 1})
        depth += 1
    for node_id in chain:
        inside[node_id] = answer
    return answer
