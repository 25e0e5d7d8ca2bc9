"""rq, set up in one place: every queue, worker and job lookup uses JSON, never rq's default pickle.

JSON keeps job payloads plain data (DESIGN.md): a job cannot carry an object whose class a worker of another
version would unpickle, and what sits in Redis is readable when debugging. Job arguments must therefore be
JSON-safe (str, numbers, lists, dicts, None); results too, unless `result_ttl=0` drops them.
"""

from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

SERIALIZER = JSONSerializer


def queue(redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=SERIALIZER)


def worker(queues: list[Queue], redis, name: str | None = None) -> SimpleWorker:
    """A worker without a fork per job (our jobs are short and share process-wide clients)."""
    return SimpleWorker(queues, connection=redis, serializer=SERIALIZER, name=name)


def fetch_many(job_ids: list[str], redis) -> list[Job | None]:
    return Job.fetch_many(job_ids, connection=redis, serializer=SERIALIZER)


def failed_jobs(queue: Queue, limit: int = 100) -> list[Job]:
    """Jobs that raised on their last attempt (rq's FailedJobRegistry: the dead letters), oldest first."""
    ids = queue.failed_job_registry.get_job_ids(0, limit - 1)
    return [j for j in fetch_many(ids, queue.connection) if j is not None]


def requeue_failed(queue: Queue, job_ids: list[str] | None = None) -> int:
    """Put failed jobs (all, or the ones named) back on their queue; returns how many were requeued."""
    registry = queue.failed_job_registry
    ids = job_ids if job_ids is not None else registry.get_job_ids()
    done = 0
    for job_id in ids:
        if job_id in registry:
            registry.requeue(job_id)
            done += 1
    return done
