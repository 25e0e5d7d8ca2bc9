"""The files maintenance jobs as the scheduler runs them: enqueued on rq by path, run by a worker."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from functions.files import uploads
from runtime.ids import utcnow


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_periodic_jobs_run_through_rq(env, settings, clients, files_api, monkeypatch):
    """What runtime/scheduler.py enqueues: the jobs load settings from the environment and do their work."""
    from rq import SimpleWorker

    from runtime.clients import forget
    from runtime.scheduler import PERIODIC

    api = files_api()
    old = utcnow() - uploads.UPLOAD_TTL - timedelta(minutes=1)
    upload = uploads.negotiate_upload(clients.db, clients.store, api.user.id,
                                      {"parent_id": api.root()["id"], "name": "stale", "size": 1,
                                       "blocks": [{"hash": _sha(b"s"), "size": 1}]}, now=old)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs = [path for path, _, _ in PERIODIC if path.startswith("functions.files.")]
    assert len(jobs) == 3
    queue = clients.queue("maintenance")
    for path in jobs:
        queue.enqueue(path.replace(":", "."))
    try:
        SimpleWorker([queue], connection=clients.redis).work(burst=True)
    finally:
        forget(settings)
    assert clients.db.uploads.find_one({"_id": upload["_id"]})["status"] == "expired"
    assert queue.finished_job_registry.count == 3
