"""Where graph mutations write their events: the one event log (runtime/events.py `append`).

Until the event log lands on main this is a stand-in with the same signature, writing the same document
shape into the `events` collection inside the caller's transaction.
"""

from __future__ import annotations

from runtime.ids import new_id, utcnow


def append(db, *, owner: str, type: str, subject: str, data: dict, node_type: str | None = None,
           cause: dict | None = None, session=None) -> dict:
    doc = {"_id": new_id(), "owner": owner, "type": type, "subject": subject, "node_type": node_type,
           "time": utcnow(), "state": "new", "data": data}
    if cause:
        doc["cause"] = cause
    db.events.insert_one(doc, session=session)
    return doc
