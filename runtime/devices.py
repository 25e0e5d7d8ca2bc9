"""The one owner of the MongoDB `devices` collection: NAS boxes (pairing) and phones (push) share it.

Pairing (functions/pairing) and push (push/registry.py) are peers that must not import each other, so the
reads and writes of the collection live here, below both; they keep the rules (validation, events, messages
to devices) and call these plain functions for every query. Every read is scoped to its owner except the
NAS-by-serial lookups the device protocol needs.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime.ids import iso, new_id
from runtime.mongo import register_indexes


@register_indexes
def _indexes(db) -> None:
    db.devices.create_index([("serial", ASCENDING)], unique=True, partialFilterExpression={"kind": "nas"},
                            name="nas_serial_unique")
    db.devices.create_index([("owner", ASCENDING), ("_id", ASCENDING)])
    db.devices.create_index([("kind", ASCENDING), ("online", ASCENDING), ("last_seen", ASCENDING)])
    db.devices.create_index([("push_token", ASCENDING)], sparse=True)
    db.devices.create_index([("owner", ASCENDING), ("kind", ASCENDING)])


def view(doc: dict) -> dict:
    """The CONTRACT §4 device shape."""
    out = {"device_id": doc["_id"], "kind": doc.get("kind"), "name": doc.get("name")}
    if doc.get("kind") == "nas":
        out["serial"] = doc.get("serial")
    out.update(online=bool(doc.get("online")), last_seen=iso(doc.get("last_seen")), paired_at=iso(doc.get("paired_at")))
    return out


# ------------------------------------------------------------------------------------------------ reads


def get_owned(db, owner: str, device_id, session=None) -> dict | None:
    if not isinstance(device_id, str) or not device_id:
        return None
    return db.devices.find_one({"_id": device_id, "owner": owner}, session=session)


def list_owned(db, owner: str, after: str | None, limit: int) -> tuple[list[dict], bool]:
    """The owner's devices by id after `after`; (page, more)."""
    query: dict = {"owner": owner}
    if after:
        query["_id"] = {"$gt": after}
    docs = list(db.devices.find(query).sort("_id", ASCENDING).limit(limit + 1))
    return docs[:limit], len(docs) > limit


def names(db, owner: str, ids: set) -> dict[str, str]:
    """Display names of the owner's devices among `ids` (name, else serial, else id)."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {d["_id"]: d.get("name") or d.get("serial") or d["_id"]
            for d in db.devices.find({"_id": {"$in": list(ids)}, "owner": owner}, {"name": 1, "serial": 1})}


def nas_by_serial(db, serial: str, projection=None) -> dict | None:
    return db.devices.find_one({"kind": "nas", "serial": serial}, projection)


# ------------------------------------------------------------------------------------------------- NAS


def record_hello(db, serial: str, fields: dict, now: datetime) -> tuple[str, dict | None]:
    """A NAS said hello: registered on first sight (unowned), `fields` set (online, last_seen, model…).
    Returns (device id, the record as it was before, None when it is new)."""
    insert = {"_id": new_id(), "name": f"NAS {serial}", "owner": None, "paired_at": None, "created_at": now}
    for attempt in (1, 2):
        try:
            before = db.devices.find_one_and_update(
                {"kind": "nas", "serial": serial}, {"$set": fields, "$setOnInsert": insert},
                upsert=True, projection={"_id": 1, "online": 1, "owner": 1},
                return_document=ReturnDocument.BEFORE)
            break
        except DuplicateKeyError:  # two first hellos raced on the unique serial: the second one updates
            if attempt == 2:
                raise
    if before is None:
        return insert["_id"], None
    return before["_id"], before


def claim_nas(db, owner: str, serial: str, now: datetime, session=None) -> str | None:
    """The NAS becomes `owner`'s unless another account owns it; its id, or None."""
    doc = db.devices.find_one_and_update(
        {"kind": "nas", "serial": serial, "$or": [{"owner": None}, {"owner": owner}]},
        {"$set": {"owner": owner, "paired_at": now}},
        projection={"_id": 1}, return_document=ReturnDocument.AFTER, session=session)
    return None if doc is None else doc["_id"]


def silent_nas(db, cutoff: datetime, limit: int) -> list[str]:
    """Ids of online NAS boxes not heard from since `cutoff`."""
    query = {"kind": "nas", "online": True, "last_seen": {"$lt": cutoff}}
    return [d["_id"] for d in db.devices.find(query, {"_id": 1}).limit(limit)]


def set_offline(db, device_id: str, cutoff: datetime, session=None) -> dict | None:
    """Offline if still silent since `cutoff`; the record before (with `owner`), or None if it spoke meanwhile."""
    return db.devices.find_one_and_update(
        {"kind": "nas", "online": True, "last_seen": {"$lt": cutoff}, "_id": device_id},
        {"$set": {"online": False}}, projection={"owner": 1}, session=session)


def release_nas(db, owner: str, device_id: str, session=None) -> bool:
    """The NAS goes back to unowned; False when it is not (or no longer) the owner's."""
    result = db.devices.update_one({"_id": device_id, "owner": owner, "kind": "nas"},
                                   {"$set": {"owner": None, "paired_at": None}}, session=session)
    return result.matched_count > 0


def forget(db, owner: str, device_id: str, session=None) -> bool:
    """Delete a phone record of the owner's."""
    return db.devices.delete_one({"_id": device_id, "owner": owner, "kind": {"$ne": "nas"}},
                                 session=session).deleted_count > 0


# ---------------------------------------------------------------------------------------------- phones


def insert_phone(db, owner: str, name: str, platform: str, now: datetime, push_token: str | None = None) -> str:
    """A new phone record; a token it brings is taken from any other record first (one install, one record)."""
    device_id = new_id()
    doc = {"_id": device_id, "kind": "phone", "owner": owner, "name": name, "platform": platform,
           "online": False, "last_seen": now, "paired_at": now, "created_at": now}
    if push_token:
        release_token(db, push_token, keep=device_id)
        doc.update(push_token=push_token, token_updated_at=now)
    db.devices.insert_one(doc)
    return device_id


def owned_phone(db, owner: str, device_id: str) -> bool:
    return db.devices.find_one({"_id": device_id, "owner": owner, "kind": "phone"}, {"_id": 1}) is not None


def set_push_token(db, owner: str, device_id: str, token: str, now: datetime) -> None:
    release_token(db, token, keep=device_id)
    db.devices.update_one({"_id": device_id, "owner": owner},
                          {"$set": {"push_token": token, "token_updated_at": now, "last_seen": now}})


def release_token(db, token: str, keep: str) -> None:
    """A token addresses one app install: a reinstall or another account on the phone takes it over."""
    db.devices.update_many({"push_token": token, "_id": {"$ne": keep}},
                           {"$unset": {"push_token": "", "token_updated_at": ""}})


def remove_token(db, token: str, now: datetime) -> int:
    """Forget exactly this token (the record stays, stamped `token_removed_at`)."""
    return db.devices.update_many({"push_token": token},
                                  {"$unset": {"push_token": "", "token_updated_at": ""},
                                   "$set": {"token_removed_at": now}}).modified_count


def remove_tokens_older_than(db, cutoff: datetime, now: datetime) -> int:
    query = {"kind": "phone", "push_token": {"$exists": True}, "token_updated_at": {"$lt": cutoff}}
    return db.devices.update_many(query, {"$unset": {"push_token": "", "token_updated_at": ""},
                                          "$set": {"token_removed_at": now}}).modified_count


def phones_by_owner(db, owners) -> dict[str, list[dict]]:
    """Phones with a push token, by owner: `{owner: [{_id, owner, push_token}]}`."""
    found: dict[str, list[dict]] = {}
    query = {"owner": {"$in": list(owners)}, "kind": "phone", "push_token": {"$nin": [None, ""]}}
    for d in db.devices.find(query, {"owner": 1, "push_token": 1}):
        if d.get("push_token"):
            found.setdefault(d["owner"], []).append(d)
    return found
