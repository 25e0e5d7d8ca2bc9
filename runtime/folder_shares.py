"""The one owner of the MongoDB `folder_shares` collection: a folder shared with a user or a group (issue 19).

The files function keeps the rules (functions/files/shares.py: who may share what, `acting_owner`, the sharee's
view and feed); push (push/sharing.py) must learn who else hears about an owner's change and may not import the
files function (they are peers), so the queries of the collection live here, below both — as runtime/devices.py
does for pairing and push. A share is `{_id, owner, folder_id, grantee_type: user|group, grantee_id, role,
created_at, updated_at}`.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING

from runtime.mongo import register_indexes


@register_indexes
def ensure_indexes(db) -> None:
    db.folder_shares.create_index([("owner", ASCENDING), ("folder_id", ASCENDING)])
    db.folder_shares.create_index([("grantee_id", ASCENDING)])


def insert(db, doc: dict) -> None:
    db.folder_shares.insert_one(doc)


def find_grant(db, owner: str, folder_id: str, grantee_type: str, grantee_id: str) -> dict | None:
    return db.folder_shares.find_one({"owner": owner, "folder_id": folder_id, "grantee_type": grantee_type,
                                      "grantee_id": grantee_id})


def set_role(db, share_id: str, role: str, now: datetime) -> None:
    db.folder_shares.update_one({"_id": share_id}, {"$set": {"role": role, "updated_at": now}})


def for_folder(db, owner: str, folder_id: str) -> list[dict]:
    return list(db.folder_shares.find({"owner": owner, "folder_id": folder_id}).sort("_id", ASCENDING))


def get_owned(db, owner: str, share_id) -> dict | None:
    return db.folder_shares.find_one({"_id": share_id, "owner": owner}) if isinstance(share_id, str) else None


def delete(db, share_id: str) -> None:
    db.folder_shares.delete_one({"_id": share_id})


def reaching(db, grantee_ids: list[str]) -> list[dict]:
    """Every share granted to one of `grantee_ids` (a user id and their group ids), oldest first."""
    return list(db.folder_shares.find({"grantee_id": {"$in": grantee_ids}}).sort("_id", ASCENDING))


def of_owners(db, owners) -> list[dict]:
    """Every share the users in `owners` made (one indexed query; the relay asks once per pass)."""
    owners = [o for o in owners if isinstance(o, str)]
    if not owners:
        return []
    return list(db.folder_shares.find({"owner": {"$in": owners}},
                                      {"owner": 1, "folder_id": 1, "grantee_type": 1, "grantee_id": 1}))
