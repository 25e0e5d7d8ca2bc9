"""What the portal's server-rendered pages read: the signed-in session, the user, conflicts, push deliveries.

Plain functions over the database (no Flask). Conflicts and push deliveries are read here rather than by the
browser because /mobile/v1 is a bearer-token API for phones; the cookie never reaches it.
"""

from __future__ import annotations

from push import registry
from runtime import devices as device_registry
from runtime import sso_sessions, users
from runtime.ids import iso

CONFLICT_TEXT = {
    "delete_modified": "A device deleted an item that had been changed elsewhere; the item was kept.",
    "modify_deleted": "A device changed an item that had been deleted; it was restored.",
    "modify_modified": "Two devices changed the same name or place; the server's version was kept.",
    "edit_edit": "Two devices edited the same file; both versions were kept (a conflicted copy).",
    "name_taken": "A device created an item whose name was taken; folders were merged or the file renamed.",
    "cycle": "A device tried to move a folder into itself; nothing changed.",
}
RESOLUTION_TEXT = {"kept_server": "kept the server's version", "restored": "restored",
                   "conflicted_copy": "saved a conflicted copy", "merged": "merged"}


def live_session(db, identity) -> dict | None:
    """The SSO session behind a cookie identity, or None (bearer callers and ended sessions get no pages)."""
    if identity is None or identity.via != "cookie" or not identity.session_id:
        return None
    return sso_sessions.find_live(db, identity.session_id, user_id=identity.user_id)


def user_view(db, user_id: str) -> dict:
    doc = users.profile(db, user_id)
    return {"id": user_id, "name": doc.get("name") or doc.get("email") or "you", "email": doc.get("email", "")}


def recent_conflicts(db, owner: str, limit: int = 100) -> list[dict]:
    docs = list(db.conflicts.find({"owner": owner}).sort([("created_at", -1), ("_id", -1)]).limit(limit))
    node_ids = list({d.get("node_id") for d in docs} - {None})
    nodes, folders = {}, {}
    for n in db.nodes.find({"_id": {"$in": node_ids}, "owner": owner}, {"name": 1, "parent_id": 1, "trashed_at": 1}):
        nodes[n["_id"]] = n.get("name")
        if not n.get("trashed_at") and n.get("parent_id"):
            folders[n["_id"]] = n["parent_id"]
    devices = device_registry.names(db, owner, {d.get("device_id") for d in docs})
    return [{
        "id": d["_id"], "type": d.get("type"), "resolution": d.get("resolution"),
        "explanation": CONFLICT_TEXT.get(d.get("type"), d.get("type") or "conflict"),
        "resolution_text": RESOLUTION_TEXT.get(d.get("resolution"), d.get("resolution") or ""),
        "node_id": d.get("node_id"), "node_name": nodes.get(d.get("node_id")),
        "folder_id": folders.get(d.get("node_id")),
        "device_name": devices.get(d.get("device_id")), "created_at": iso(d.get("created_at")),
    } for d in docs]


def recent_notifications(db, owner: str, cursor: str | None, limit: int = 50) -> dict:
    """A page of push deliveries (newest first) with each device's name."""
    page = registry.list_deliveries(db, owner, cursor, limit)
    devices = device_registry.names(db, owner, {i.get("device_id") for i in page["items"]})
    for item in page["items"]:
        item["device_name"] = devices.get(item.get("device_id"), "a removed device")
    return page
