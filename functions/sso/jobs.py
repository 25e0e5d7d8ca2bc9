"""Periodic SSO maintenance (PERIODIC below: runtime/scheduler.py runs it every 15 s on rq).

Ends sessions whose lifetime is over and sends the back-channel logouts that are due, so a sibling hears of
an ended session within 60 s whether it ended by logout or by expiry.
"""

from __future__ import annotations

from functions.sso.service import SsoService
from runtime.clients import process_clients
from runtime.scheduler import Periodic


def run_maintenance(clients) -> dict:
    sso = SsoService(clients.db, clients.settings, clients.mongo)
    ended = sso.end_expired_sessions()
    sent = sso.deliver_backchannel(clients.keys.sign, timeout=min(clients.settings.http_timeout_seconds, 5.0))
    return {"ended": ended, **sent, "purged": sso.purge_expired()}


def end_sessions() -> dict:
    """rq job (no arguments): settings and clients come from the worker's environment."""
    return run_maintenance(process_clients())


PERIODIC = [Periodic(end_sessions, every=15)]  # expired SSO sessions + back-channel logout retries
