"""rq runs with the JSON serializer everywhere (runtime/jobs.py): what sits in Redis is JSON, never a pickle."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import pytest

from runtime import jobs


def test_an_enqueued_job_is_stored_as_json_and_a_worker_runs_it(clients):
    queue = clients.queue("default")
    job = queue.enqueue("json.dumps", {"b": [1, 2], "a": "x"}, sort_keys=True)
    raw = clients.redis.hget(job.key, "data")
    func, _instance, args, kwargs = json.loads(zlib.decompress(raw))
    assert (func, args, kwargs) == ("json.dumps", [{"b": [1, 2], "a": "x"}], {"sort_keys": True})
    jobs.worker([queue], clients.redis).work(burst=True, with_scheduler=False)
    done = jobs.fetch_many([job.id], clients.redis)[0]
    assert done.get_status() == "finished" and done.return_value() == '{"a": "x", "b": [1, 2]}'


def test_an_argument_json_cannot_carry_is_refused_when_enqueued(clients):
    queue = clients.queue("default")
    with pytest.raises(TypeError):
        queue.enqueue("json.dumps", {"when": datetime(2026, 1, 1, tzinfo=UTC)})
    assert queue.count == 0


def test_the_worker_process_and_every_queue_use_the_same_serializer(clients):
    assert clients.queue("push").serializer is jobs.SERIALIZER
    assert jobs.worker([clients.queue("push")], clients.redis).serializer is jobs.SERIALIZER
