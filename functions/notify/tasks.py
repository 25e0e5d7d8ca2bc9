"""Periodic notifier jobs (PERIODIC below, run by runtime/scheduler.py): module-level, no arguments, own clients."""

from __future__ import annotations

import logging

from functions.notify import deliveries, storage
from functions.notify.service import DELIVERY_KEEP
from runtime.clients import process_clients
from runtime.ids import utcnow
from runtime.scheduler import Periodic

log = logging.getLogger(__name__)


def check_storage() -> int:
    """The data volume past PCLOUD_STORAGE_WARN_PERCENT → storage.volume.nearly_full for the admins (once)."""
    clients = process_clients()
    path = storage.volume_path(clients.settings)
    if path is None:
        return 0
    return storage.check(clients.db, clients.mongo, path, clients.settings.storage_warn_percent, utcnow())


def sweep_deliveries() -> int:
    """Finished webhook and push delivery records older than 30 days go."""
    return deliveries.sweep_older_than(process_clients().db, utcnow() - DELIVERY_KEEP)


PERIODIC = [
    Periodic(check_storage, every=300),
    Periodic(sweep_deliveries, every=3600),
]
