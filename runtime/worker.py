"""The rq worker process: our background jobs (push, maintenance), without a fork per job, one process."""

from __future__ import annotations

import sys

from runtime import jobs, liveness
from runtime.clients import clients_for
from runtime.logs import configure_logging
from runtime.settings import load_settings

QUEUES = ("push", "default", "maintenance")


def main(argv: list[str]) -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    clients = clients_for(settings)
    names = argv or list(QUEUES)
    name = liveness.worker_name()
    stop_beating = liveness.start_beating(clients.redis, clients.redis_keys, name)  # see runtime/liveness.py
    worker = jobs.worker([clients.queue(n) for n in names], clients.redis, name=name)
    try:
        # no rq scheduler child: nothing enqueues for later (periodic jobs are runtime/scheduler.py's), and a
        # SIGKILLed worker would leave that child running on its own
        worker.work(with_scheduler=False)
    finally:
        stop_beating.set()


if __name__ == "__main__":
    main(sys.argv[1:])
