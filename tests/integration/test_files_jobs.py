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
    from runtime import jobs as rq_jobs
    from runtime.clients import forget
    from runtime.scheduler import periodic_jobs

    api = files_api()
    old = utcnow() - uploads.UPLOAD_TTL - timedelta(minutes=1)
    upload = uploads.negotiate_upload(clients.db, clients.store, api.user.id,
                                      {"parent_id": api.root()["id"], "name": "stale", "size": 1,
                                       "blocks": [{"hash": _sha(b"s"), "size": 1}]}, now=old)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs = [job.path for job in periodic_jobs(["functions.files.tasks"])]
    assert len(jobs) == 4
    queue = clients.queue("maintenance")
    for path in jobs:
        queue.enqueue(path.replace(":", "."))
    try:
        rq_jobs.worker([queue], clients.redis).work(burst=True)
    finally:
        forget(settings)
    assert clients.db.uploads.find_one({"_id": upload["_id"]})["status"] == "expired"
    assert queue.finished_job_registry.count == 4
