"""Owner of the `executions` and `action_slots` collections: one record per action run (CONTRACT §8).

Delivery is at least once with one record per (trigger, event) — a unique index makes a second processor's
insert a no-op. A runner claims an execution with a lease; when it dies, the lease runs out and another
claims the same record again (same id, so the app's Idempotency-Key still dedupes). Per-action concurrency is a
set of slot documents claimed with the same lease, so it holds across any number of processors.

`executions` `{_id, owner, app, action, state, trigger?, trigger_key?, event_id?, params, attempts,
max_attempts, backoff_s, depth, caller_app?, idempotency_key?, created_at, started_at?, finished_at?,
next_attempt_at, lease_until?, lease_holder?, slot?, result?, error?}`.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from runtime import events
from runtime.errors import BadRequest, Conflict, NotFound
from runtime.ids import as_utc, iso, new_id, utcnow
from runtime.mongo import register_indexes, transaction

STATES = ("new", "in_progress", "done", "failed", "dead")
RUNNABLE = ("new", "failed", "in_progress")  # in_progress only once its lease ran out
FINAL = ("done", "dead")


@register_indexes
def _indexes(db) -> None:
    db.executions.create_index([("trigger_key", ASCENDING), ("event_id", ASCENDING)], unique=True,
                               partialFilterExpression={"event_id": {"$type": "string"}})
    db.executions.create_index([("owner", ASCENDING), ("idempotency_key", ASCENDING)], unique=True,
                               partialFilterExpression={"idempotency_key": {"$type": "string"}})
    db.executions.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
    db.executions.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    db.executions.create_index([("event_id", ASCENDING)])


def new_execution(*, owner: str, app: str, action: str, params: dict, depth: int = 0, trigger: str | None = None,
                  trigger_app: str | None = None, event_id: str | None = None, retry: dict | None = None,
                  caller_app: str | None = None, idempotency_key: str | None = None, now=None) -> dict:
    now = now or utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what MongoDB keeps: cursors compare exactly
    retry = retry or {"attempts": 1, "backoff_s": [1]}
    doc = {"_id": new_id(), "owner": owner, "app": app, "action": action, "state": "new", "params": params,
           "attempts": 0, "max_attempts": int(retry.get("attempts", 1)), "backoff_s": retry.get("backoff_s", [1]),
           "depth": depth, "created_at": now, "next_attempt_at": now}
    if trigger is not None:
        doc["trigger"] = trigger
        doc["trigger_key"] = f"{trigger_app or app}/{trigger}"
    if event_id is not None:
        doc["event_id"] = event_id
    if caller_app is not None:
        doc["caller_app"] = caller_app
    if idempotency_key is not None:
        doc["idempotency_key"] = f"{caller_app or ''}/{app}/{action}/{idempotency_key}"
    return doc


def insert_for_event(db, doc: dict) -> bool:
    """False when this (trigger, event) already has its execution: the one-per-pair rule."""
    try:
        db.executions.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


def insert_idempotent(db, doc: dict) -> dict:
    """The execution for this Idempotency-Key: the new one, or the one a previous request made."""
    try:
        db.executions.insert_one(doc)
        return doc
    except DuplicateKeyError:
        found = db.executions.find_one({"owner": doc["owner"], "idempotency_key": doc.get("idempotency_key")})
        if found is None:
            raise
        if found["app"] != doc["app"] or found["action"] != doc["action"] or found["params"] != doc["params"]:
            raise Conflict("this Idempotency-Key was used for another call", code="idempotency_conflict") from None
        return found


def lease_query(now) -> dict:
    return {"$or": [{"state": {"$in": ["new", "failed"]}, "next_attempt_at": {"$lte": now}},
                    {"state": "in_progress", "lease_until": {"$lt": now}}]}


def claim(db, execution_id: str, holder: str, lease_seconds: float, now=None) -> dict | None:
    """Lease one execution (new/failed and due, or in_progress with a lapsed lease)."""
    now = now or utcnow()
    query = {"_id": execution_id, **lease_query(now)}
    return db.executions.find_one_and_update(
        query, {"$set": {"state": "in_progress", "lease_holder": holder,
                         "lease_until": now + timedelta(seconds=lease_seconds), "started_at": now},
                "$inc": {"attempts": 1}},
        return_document=ReturnDocument.AFTER)


def due(db, limit: int, apps: list[str] | None = None, now=None) -> list[dict]:
    """Executions that may be claimed now, oldest first (a cheap read; `claim` decides)."""
    now = now or utcnow()
    query = lease_query(now)
    if apps is not None:
        query = {"$and": [query, {"app": {"$in": apps}}]}
    return list(db.executions.find(query, {"_id": 1, "app": 1, "action": 1, "event_id": 1})
                .sort("next_attempt_at", ASCENDING).limit(limit))


def next_due_at(db, now=None):
    doc = db.executions.find_one({"state": {"$in": ["new", "failed"]}}, {"next_attempt_at": 1},
                                 sort=[("next_attempt_at", ASCENDING)])
    lease = db.executions.find_one({"state": "in_progress"}, {"lease_until": 1}, sort=[("lease_until", ASCENDING)])
    times = [as_utc(d[k]) for d, k in ((doc, "next_attempt_at"), (lease, "lease_until")) if d and d.get(k)]
    return min(times) if times else None


def finish(db, doc: dict, holder: str, outcome: str, *, result=None, error: str | None = None, now=None) -> dict | None:
    """Record an attempt's outcome: done, dead, or failed-with-backoff (dead once attempts are used up).

    Only the lease holder may write: a runner whose lease lapsed (another took over) changes nothing.
    """
    now = now or utcnow()
    fields: dict = {"finished_at": now, "lease_until": None, "lease_holder": None}
    if outcome == "done":
        fields.update(state="done", result=result, error=None, next_attempt_at=None)
    elif outcome == "dead" or doc["attempts"] >= doc.get("max_attempts", 1):
        fields.update(state="dead", error=error, next_attempt_at=None)
    else:
        delay = backoff_delay(doc.get("backoff_s"), doc["attempts"])
        fields.update(state="failed", error=error, next_attempt_at=now + timedelta(seconds=delay))
    query = {"_id": doc["_id"], "state": "in_progress", "lease_holder": holder}
    if fields["state"] != "dead":
        return db.executions.find_one_and_update(query, {"$set": fields}, return_document=ReturnDocument.AFTER)

    def die(session):
        found = db.executions.find_one_and_update(query, {"$set": fields}, return_document=ReturnDocument.AFTER,
                                                  session=session)
        if found is not None:  # apps.execution.dead in the same transaction: the notifier tells the owner
            events.append(db, owner=found["owner"], type="apps.execution.dead", subject=found["_id"],
                          data={"execution": {"id": found["_id"], "app": found["app"], "action": found["action"],
                                              "attempts": found.get("attempts"), "error": found.get("error"),
                                              "event_id": found.get("event_id")}},
                          cause={"app": found["app"], "execution_id": found["_id"],
                                 "depth": int(found.get("depth") or 0)}, session=session)
        return found

    return transaction(db.client, die)


def backoff_delay(backoff, attempt: int) -> float:
    """A list is one delay per retry (the last repeats); a number doubles on each retry."""
    if isinstance(backoff, list) and backoff:
        return float(backoff[min(attempt - 1, len(backoff) - 1)])
    base = float(backoff if isinstance(backoff, (int, float)) else 1)
    return base * (2 ** max(attempt - 1, 0))


def retry_dead(db, owner: str, execution_id: str) -> dict:
    doc = db.executions.find_one_and_update(
        {"_id": execution_id, "owner": owner, "state": "dead"},
        {"$set": {"state": "new", "attempts": 0, "next_attempt_at": utcnow(), "error": None, "finished_at": None}},
        return_document=ReturnDocument.AFTER)
    if doc is None:
        found = db.executions.find_one({"_id": execution_id, "owner": owner})
        if found is None:
            raise NotFound("no such execution", code="not_found")
        raise Conflict(f"execution is {found['state']}; only dead executions can be retried", code="invalid_state")
    return doc


def get(db, owner: str, execution_id: str) -> dict:
    doc = db.executions.find_one({"_id": execution_id, "owner": owner})
    if doc is None:
        raise NotFound("no such execution", code="not_found")
    return doc


def list_for(db, owner: str, *, app: str | None, state: str | None, cursor: str | None, limit: int) -> dict:
    query: dict = {"owner": owner}
    if app:
        query["app"] = app
    if state:
        if state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}", code="invalid_state")
        query["state"] = state
    if cursor:
        at, last_id = _decode_cursor(cursor)
        query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": last_id}}]
    docs = list(db.executions.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
    more = len(docs) > limit
    docs = docs[:limit]
    return {"items": [public_json(d) for d in docs], "next_cursor": _encode_cursor(docs[-1]) if more and docs else None}


def _encode_cursor(doc: dict) -> str:
    at = as_utc(doc["created_at"])
    return f"{int(at.timestamp() * 1000)}.{doc['_id']}"


def _decode_cursor(cursor: str):
    from datetime import UTC, datetime

    ms, _, last_id = cursor.partition(".")
    if not ms.isdigit() or not last_id:
        raise BadRequest("cursor is not one this API made", code="invalid_cursor")
    return datetime.fromtimestamp(int(ms) / 1000, UTC), last_id


def event_settled(db, event_id: str) -> bool:
    """Every execution an event caused has ended (done or dead)."""
    return db.executions.find_one({"event_id": event_id, "state": {"$nin": list(FINAL)}}, {"_id": 1}) is None


def open_event_ids(db, event_ids: list[str]) -> set[str]:
    """Those of `event_ids` with an execution not yet done or dead."""
    if not event_ids:
        return set()
    return set(db.executions.distinct("event_id", {"event_id": {"$in": list(event_ids)},
                                                   "state": {"$nin": list(FINAL)}}))


def purge_app(db, app: str) -> int:
    """An uninstalled app's unfinished executions end dead (their events can then settle)."""
    return db.executions.update_many({"app": app, "state": {"$nin": list(FINAL)}},
                                     {"$set": {"state": "dead", "error": "app uninstalled", "lease_until": None,
                                               "finished_at": utcnow()}}).modified_count


# --- per-action concurrency -----------------------------------------------------------------------------
_SLOTS_MADE: set[tuple] = set()  # (database, app, action, concurrency) whose slot documents exist


def take_slot(db, app: str, action: str, concurrency: int, holder: str, lease_seconds: float, now=None) -> str | None:
    """A free one of the action's `concurrency` slots, leased; None when all are busy.

    Slot documents are created once (insert, a duplicate is fine) and then only updated: an upsert racing a
    release could resurrect a slot nobody holds.
    """
    now = now or utcnow()
    until = now + timedelta(seconds=lease_seconds)
    ids = [f"{app}/{action}/{index}" for index in range(concurrency)]
    key = (db.name, app, action, concurrency)
    if key not in _SLOTS_MADE:
        if db.action_slots.count_documents({"_id": {"$in": ids}}) < concurrency:
            for slot_id in ids:
                try:
                    db.action_slots.insert_one({"_id": slot_id, "holder": None, "until": None})
                except DuplicateKeyError:
                    pass
        _SLOTS_MADE.add(key)
    token = f"{holder}/{new_id()}"
    doc = db.action_slots.find_one_and_update(
        {"_id": {"$in": ids}, "$or": [{"until": None}, {"until": {"$lt": now}}]},
        {"$set": {"holder": token, "until": until}}, return_document=ReturnDocument.AFTER)
    if doc is None or doc.get("holder") != token:
        return None
    return f"{doc['_id']}#{token}"


def release_slot(db, slot: str, holder: str | None = None) -> None:
    slot_id, _, token = slot.partition("#")
    db.action_slots.update_one({"_id": slot_id, "holder": token}, {"$set": {"until": None, "holder": None}})


NOTICE_TYPES = {"new": "apps.execution.queued", "in_progress": "apps.execution.started",
                "done": "apps.execution.done", "failed": "apps.execution.failed", "dead": "apps.execution.dead"}


def notice(doc: dict) -> tuple[str, dict]:
    """The live notice of an execution's current state (runtime/live.py): its public view without the result
    (a notice stays small; the page fetches the execution when it wants the body), the error cut short."""
    data = public_json(doc)
    data.pop("result", None)
    if isinstance(data.get("error"), str) and len(data["error"]) > 500:
        data["error"] = data["error"][:500] + "…"
    return NOTICE_TYPES.get(doc["state"], "apps.execution.queued"), data


def public_json(doc: dict) -> dict:
    out = {"id": doc["_id"], "app": doc["app"], "action": doc["action"], "state": doc["state"],
           "attempts": doc.get("attempts", 0), "created_at": iso(doc.get("created_at"))}
    for key in ("trigger", "event_id"):
        if doc.get(key):
            out[key] = doc[key]
    for key in ("started_at", "finished_at", "next_attempt_at"):
        if doc.get(key):
            out[key] = iso(doc[key])
    if doc.get("state") in ("done",) or doc.get("result") is not None:
        out["result"] = doc.get("result")
    if doc.get("error"):
        out["error"] = doc["error"]
    return out
