"""The one owner of the `groups` collection: named sets of users an admin manages (a household: "family").

Groups are what sharing and the apps' per-user enabling name; they live below the functions so any of them
can ask `group_ids_for(db, user_id)` — always read at the time of use, so a membership change counts at once.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime.ids import new_id
from runtime.mongo import register_indexes


class NameTaken(Exception):
    """Another group already has this name (compared case-insensitively)."""


@register_indexes
def _indexes(db) -> None:
    db.groups.create_index([("name_key", ASCENDING)], unique=True)
    db.groups.create_index([("members", ASCENDING)])


def create(db, name: str, members: list[str], created_by: str, now: datetime) -> dict:
    doc = {"_id": new_id(), "name": name, "name_key": name.casefold(), "members": list(dict.fromkeys(members)),
           "created_by": created_by, "created_at": now, "updated_at": now}
    try:
        db.groups.insert_one(doc)
    except DuplicateKeyError:
        raise NameTaken(name) from None
    return doc


def get(db, group_id: str) -> dict | None:
    return db.groups.find_one({"_id": group_id}) if isinstance(group_id, str) else None


def page(db, after: str | None, limit: int) -> tuple[list[dict], bool]:
    query = {"_id": {"$gt": after}} if after else {}
    docs = list(db.groups.find(query).sort("_id", ASCENDING).limit(limit + 1))
    return docs[:limit], len(docs) > limit


def add_member(db, group_id: str, user_id: str, now: datetime) -> dict | None:
    return db.groups.find_one_and_update({"_id": group_id}, {"$addToSet": {"members": user_id},
                                                             "$set": {"updated_at": now}},
                                         return_document=ReturnDocument.AFTER)


def remove_member(db, group_id: str, user_id: str, now: datetime) -> dict | None:
    return db.groups.find_one_and_update({"_id": group_id}, {"$pull": {"members": user_id},
                                                             "$set": {"updated_at": now}},
                                         return_document=ReturnDocument.AFTER)


def delete(db, group_id: str) -> bool:
    return db.groups.delete_one({"_id": group_id}).deleted_count == 1


def group_ids_for(db, user_id: str) -> list[str]:
    """The groups this user belongs to (what sharing and app enabling check)."""
    return [g["_id"] for g in db.groups.find({"members": user_id}, {"_id": 1}).sort("_id", ASCENDING)]


def memberships(db, user_ids: list[str]) -> dict[str, list[str]]:
    """user id → its group ids, for a page of users."""
    found: dict[str, list[str]] = {u: [] for u in user_ids}
    for g in db.groups.find({"members": {"$in": list(user_ids)}}, {"members": 1}).sort("_id", ASCENDING):
        for member in g["members"]:
            if member in found:
                found[member].append(g["_id"])
    return found


def members_of(db, group_ids) -> dict[str, list[str]]:
    """group id → its members, for the groups named (push resolves a group share's people once per pass)."""
    group_ids = [g for g in group_ids if isinstance(g, str)]
    if not group_ids:
        return {}
    return {g["_id"]: list(g.get("members") or []) for g in db.groups.find({"_id": {"$in": group_ids}},
                                                                              {"members": 1})}
