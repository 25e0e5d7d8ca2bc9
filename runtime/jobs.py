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
