"""Periodic pairing jobs (PERIODIC below, run by runtime/scheduler.py): module-level, no arguments, own clients.

The listener times sessions out several times a second; this job is the backstop when it is down.
"""

from __future__ import annotations

import logging

from functions.pairing.service import PairingService
from runtime.clients import process_clients
from runtime.scheduler import Periodic

log = logging.getLogger(__name__)


def _service() -> PairingService:
    return PairingService.from_clients(process_clients())


def expire_sessions() -> int:
    """Sessions past their ack or confirm deadline → failed / expired."""
    moved = _service().sweep_deadlines(limit=1000)
    if moved:
        log.info("pairing: %d sessions timed out", moved)
    return moved


def mark_devices_offline() -> int:
    """NAS boxes silent for 90 s → offline, with a device.online event for the owner."""
    moved = _service().mark_offline()
    if moved:
        log.info("pairing: %d devices went offline", moved)
    return moved


PERIODIC = [
    Periodic(expire_sessions, every=2),  # backstop for the listener's sweeper
    Periodic(mark_devices_offline, every=10),  # NAS silent for 90 s → offline
]
