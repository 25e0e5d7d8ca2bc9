"""Owner of the `apps` and `app_users` collections: installed apps and each user's settings for them.

`apps` `{_id: name, version, title, description, namespace, manifest, requests, granted, state, error,
progress, dir, endpoint, upgrade?, replay_on_approve, approved_by, created_at, updated_at}`;
`app_users` `{_id: "<app>:<user>", app, owner, settings, init_state, updated_at}`.
"""

from __future__ import annotations

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from functions.apps.manifest import settings_schema
from runtime.ids import iso, utcnow
from runtime.mongo import register_indexes

STATES = ("pending_approval", "installing", "active", "failed", "rejected")
LIVE = ("installing", "active")


@register_indexes
def _indexes(db) -> None:
    db.apps.create_index([("namespace", ASCENDING)])
    db.apps.create_index([("state", ASCENDING)])
    db.app_users.create_index([("owner", ASCENDING), ("app", ASCENDING)])


def get(db, name: str) -> dict | None:
    return db.apps.find_one({"_id": name})


def all_apps(db, states=None) -> list[dict]:
    query = {"state": {"$in": list(states)}} if states else {}
    return list(db.apps.find(query).sort("_id", ASCENDING))


def insert(db, doc: dict) -> None:
    db.apps.insert_one(doc)


def replace(db, doc: dict) -> None:
    db.apps.replace_one({"_id": doc["_id"]}, doc, upsert=True)


def update(db, name: str, fields: dict, expect_state: str | tuple | None = None, unset=()) -> dict | None:
    query = {"_id": name}
    if expect_state is not None:
        query["state"] = {"$in": [expect_state] if isinstance(expect_state, str) else list(expect_state)}
    change = {"$set": {**fields, "updated_at": utcnow()}}
    if unset:
        change["$unset"] = {k: "" for k in unset}
    return db.apps.find_one_and_update(query, change, return_document=ReturnDocument.AFTER)


def delete(db, name: str) -> None:
    db.apps.delete_one({"_id": name})
    db.app_users.delete_many({"app": name})


def namespace_owner(db, namespace: str) -> str | None:
    doc = db.apps.find_one({"namespace": namespace, "state": {"$ne": "rejected"}}, {"_id": 1})
    return doc["_id"] if doc else None


def public_json(doc: dict) -> dict:
    out = {"name": doc["_id"], "version": doc["version"], "title": doc.get("title"),
           "description": doc.get("description", ""), "state": doc["state"], "namespace": doc.get("namespace"),
           "requests": doc.get("requests") or {}, "granted": doc.get("granted")}
    if doc.get("error"):
        out["error"] = doc["error"]
    if doc.get("progress"):
        out["progress"] = doc["progress"]
    if doc.get("replay_id"):
        out["replay_id"] = doc["replay_id"]
    out["settings_schema"] = settings_schema((doc.get("manifest") or {}).get("settings"))
    if doc.get("upgrade"):
        up = doc["upgrade"]
        out["upgrade"] = {"version": up["version"], "state": "pending_approval", "requests": up["requests"]}
    out["created_at"] = iso(doc.get("created_at"))
    out["updated_at"] = iso(doc.get("updated_at"))
    return out


def user_doc(db, app: str, owner: str) -> dict | None:
    return db.app_users.find_one({"_id": f"{app}:{owner}"})


def put_user_settings(db, app: str, owner: str, settings: dict) -> None:
    db.app_users.update_one({"_id": f"{app}:{owner}"},
                            {"$set": {"app": app, "owner": owner, "settings": settings, "updated_at": utcnow()}},
                            upsert=True)


def claim_init(db, app: str, version: str, owner: str) -> bool:
    """True once per (app version, user): whoever gets True runs the app's init for that user."""
    doc = db.app_users.find_one_and_update(
        {"_id": f"{app}:{owner}", "init_version": {"$ne": version}},
        {"$set": {"init_version": version, "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER)
    if doc is not None:
        return True
    try:
        db.app_users.insert_one({"_id": f"{app}:{owner}", "app": app, "owner": owner, "settings": {},
                                 "init_version": version, "updated_at": utcnow()})
    except DuplicateKeyError:
        return False  # the user's record exists and this version's init is already claimed
    return True
