"""Replay (CONTRACT §8): feed an app past events, at approval (`replay: true`, every user) or per user.

Owner of the `replays` collection `{_id, app, owner|None, since|None, state: running|done|failed, total, done,
cursor: {owner: seq}, lease_until, created_at, finished_at}`. A processor leases a replay, walks each owner's log
in seq order (`runtime.events.list_events`), plans the app's executions exactly as the live path does and bulk
inserts them (the unique (trigger, event) index skips what the live path already made); the sweeper runs them.
Progress (`done` of `total` events) is saved per page, so a replay whose processor died resumes where it was.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from functions.apps import store
from functions.apps.planner import Planner
from runtime.errors import NotFound
from runtime.ids import as_utc, new_id, utcnow
from runtime.mongo import register_indexes

PAGE = 1000
LEASE_S = 60.0


@register_indexes
def _indexes(db) -> None:
    db.replays.create_index([("state", ASCENDING), ("lease_until", ASCENDING)])


def start(db, app: str, owner: str | None, since=None) -> dict:
    doc = {"_id": new_id(), "app": app, "owner": owner, "since": since, "state": "running", "total": None,
           "done": 0, "cursor": {}, "lease_until": None, "created_at": utcnow()}
    db.replays.insert_one(doc)
    return doc


def get(db, replay_id: str, owner: str, admin: bool = False) -> dict:
    doc = db.replays.find_one({"_id": replay_id})
    if doc is None or (doc.get("owner") != owner and not (admin and doc.get("owner") is None)):
        raise NotFound("no such replay", code="not_found")
    return {"id": doc["_id"], "app": doc["app"], "state": doc["state"], "total": doc.get("total") or 0,
            "done": doc.get("done", 0)}


def _owners(db, replay_doc: dict) -> list[str]:
    if replay_doc.get("owner"):
        return [replay_doc["owner"]]
    return sorted(d["_id"] for d in db.users.find({}, {"_id": 1}))


def _count(db, owners: list[str], since) -> int:
    from runtime import events

    total = 0
    for owner in owners:
        after = 0
        while True:
            items, cursor = events.list_events(db, owner, after=after, limit=PAGE)
            total += sum(1 for e in items if _after_since(e, since))
            if cursor is None:
                break
            after = int(cursor)
    return total


def _after_since(event: dict, since) -> bool:
    if since is None:
        return True
    from datetime import datetime

    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")) >= as_utc(since)


def work_one(db, pool=None, now=None) -> bool:
    """Lease one running replay and carry it to its end; False when there was none."""
    from runtime import events

    now = now or utcnow()
    doc = db.replays.find_one_and_update(
        {"state": "running", "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]},
        {"$set": {"lease_until": now + timedelta(seconds=LEASE_S)}}, return_document=ReturnDocument.AFTER)
    if doc is None:
        return False
    app_doc = store.get(db, doc["app"])
    if app_doc is None or app_doc["state"] not in ("active", "installing"):
        db.replays.update_one({"_id": doc["_id"]}, {"$set": {"state": "failed", "finished_at": utcnow()}})
        return True
    since = doc.get("since")
    owners = _owners(db, doc)
    if doc.get("total") is None:
        total = _count(db, owners, since)
        db.replays.update_one({"_id": doc["_id"]}, {"$set": {"total": total}})
    planner = Planner(db, apps=[app_doc])
    done = doc.get("done", 0)
    for owner in owners:
        after = int((doc.get("cursor") or {}).get(owner, 0))
        while True:
            items, cursor = events.list_events(db, owner, after=after, limit=PAGE)
            page = [e for e in items if _after_since(e, since)]
            executions, touched = [], []
            for event in page:
                made = planner.plan(event, only_app=app_doc["_id"])
                if made:
                    touched.append(event["id"])
                executions.extend(made)
            if executions:
                try:
                    db.executions.insert_many(executions, ordered=False)
                except BulkWriteError as exc:  # duplicates: the live path (or a dead replayer) made them first
                    if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                        raise
                mark_states(db, touched)
            done += len(page)
            if items:
                after = items[-1]["seq"]
            db.replays.update_one({"_id": doc["_id"]},
                                  {"$set": {"done": done, f"cursor.{owner}": after,
                                            "lease_until": utcnow() + timedelta(seconds=LEASE_S)}})
            if pool is not None:
                pool.settled.set()
            if cursor is None:
                break
    db.replays.update_one({"_id": doc["_id"]}, {"$set": {"state": "done", "finished_at": utcnow(),
                                                          "lease_until": None}})
    return True


def mark_states(db, event_ids: list[str]) -> None:
    """in_progress while an execution of the event is open, else done. Re-checked after writing in_progress, so
    a run that settled meanwhile (and marked the event done before our write) cannot leave it in_progress."""
    from functions.apps import executions as ex
    from runtime import events

    open_ids = ex.open_event_ids(db, event_ids)
    events.set_state(db, [e for e in event_ids if e not in open_ids], "done")
    if open_ids:
        events.set_state(db, list(open_ids), "in_progress")
        settled = open_ids - ex.open_event_ids(db, list(open_ids))
        events.set_state(db, list(settled), "done")


def since_value(raw):
    """`since` of a replay request: an ISO date-time (or None for the whole log)."""
    if raw is None:
        return None
    from datetime import datetime

    from runtime.errors import BadRequest

    try:
        return as_utc(datetime.fromisoformat(str(raw).replace("Z", "+00:00")))
    except ValueError:
        raise BadRequest("since must be an ISO 8601 date-time", code="invalid_since") from None
