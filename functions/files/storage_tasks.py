"""rq jobs of the placement worker (PERIODIC and ON_INSERT below, run by runtime/scheduler.py): module-level, no
arguments."""

from __future__ import annotations

import logging

from functions.files import storage
from runtime.clients import process_clients
from runtime.scheduler import OnInsert, Periodic

log = logging.getLogger(__name__)


def place_blocks() -> dict:
    result = storage.run_placement(process_clients())
    log.info("files placement: %s", result)
    return result


def place_requested() -> dict:
    result = storage.run_requested(process_clients())
    log.info("files placement, requested by commits: %s", result)
    return result


def scrub_blocks() -> dict:
    result = storage.run_scrub(process_clients())
    log.info("files scrub: %s", result)
    return result


PERIODIC = [
    Periodic(place_blocks, every=10, timeout=600),  # new and changed files to their policy; repair; trim
    Periodic(scrub_blocks, every=600, timeout=900),  # re-hash copies older than PCLOUD_SCRUB_DAYS (a budget per run)
]

ON_INSERT = [
    # a commit into an at_rest folder asks for sealing now (replication.request_placement): enqueued at once
    OnInsert(place_requested, collection="placement_wakeups", timeout=600),
]
