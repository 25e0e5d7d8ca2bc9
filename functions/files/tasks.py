"""rq jobs for files maintenance (scheduled by runtime/scheduler.py): module-level, no arguments."""

from __future__ import annotations

import logging

from functions.files import gc
from runtime.clients import process_clients

log = logging.getLogger(__name__)


def _clients():
    return process_clients()


def expire_uploads() -> int:
    count = gc.expire_uploads(_clients().db)
    log.info("files: %d uploads expired", count)
    return count


def purge_trash() -> int:
    c = _clients()
    count = gc.purge_trash(c.db, c.mongo, c.settings.trash_days)
    log.info("files: %d trashed nodes purged", count)
    return count


def collect_blocks() -> int:
    c = _clients()
    count = gc.collect_blocks(c.db, c.mongo, c.store)
    log.info("files: %d unreferenced blocks collected", count)
    return count
