"""rq jobs for files maintenance (PERIODIC below, run by runtime/scheduler.py): module-level, no arguments."""

from __future__ import annotations

import logging

from functions.files import gc, versions
from functions.files.tree import now_ms
from runtime.clients import process_clients
from runtime.scheduler import Periodic

log = logging.getLogger(__name__)


def _clients():
    return process_clients()


def expire_uploads() -> int:
    c = _clients()
    count = gc.expire_uploads(c.db, store=c.store)
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


def prune_versions() -> int:
    c = _clients()
    count = versions.prune(c.db, c.mongo, keep_count=c.settings.versions_keep, days=c.settings.versions_days,
                           now=now_ms())
    log.info("files: %d previous versions pruned", count)
    return count


PERIODIC = [
    Periodic(expire_uploads, every=300),  # uncommitted uploads stop protecting blocks
    Periodic(purge_trash, every=3600),  # trash older than PCLOUD_TRASH_DAYS → tombstones
    Periodic(collect_blocks, every=600),  # blocks unreferenced past the grace period
    Periodic(prune_versions, every=3600),  # versions beyond PCLOUD_VERSIONS_KEEP / _DAYS give up their blocks
]
