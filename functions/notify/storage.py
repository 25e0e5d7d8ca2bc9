"""Storage nearly full: the data volume's fill level, checked periodically (tasks.py), told once per crossing.

Owner of the `notify_state` collection (`{_id: "storage", full: bool, used_percent, checked_at}`): the
`storage.volume.nearly_full` event is appended (for each admin: the box is theirs to fix) when the volume
crosses PCLOUD_STORAGE_WARN_PERCENT, and again only after it went back 5 points below it.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from runtime import events, users
from runtime.mongo import transaction

HYSTERESIS_PERCENT = 5


def volume_path(settings) -> Path | None:
    """Where the blobs live on this box (file:// store), else None (an object store's room is not ours to see)."""
    parts = urlsplit(settings.store_url)
    if parts.scheme != "file":
        return None
    path = Path(parts.path or settings.data_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check(db, mongo, path: Path, warn_percent: int, now: datetime, usage=shutil.disk_usage) -> int:
    """Measure `path`'s volume; append the event on a crossing. Returns how many events were appended."""
    total, used, free = usage(str(path))
    percent = round(100 * used / total, 1) if total else 0.0
    state = db.notify_state.find_one({"_id": "storage"}) or {}
    was_full = bool(state.get("full"))
    full = percent >= warn_percent or (was_full and percent >= warn_percent - HYSTERESIS_PERCENT)
    data = {"path": str(path), "used_percent": percent, "total_bytes": total, "free_bytes": free,
            "warn_percent": warn_percent}

    def work(session):
        db.notify_state.update_one({"_id": "storage"}, {"$set": {"full": full, "used_percent": percent,
                                                                 "checked_at": now}}, upsert=True, session=session)
        if not full or was_full:
            return 0
        admins = users.admin_ids(db)
        for admin in admins:
            events.append(db, owner=admin, type="storage.volume.nearly_full", subject="data", data=data,
                          session=session)
        return len(admins)

    return transaction(mongo, work)
