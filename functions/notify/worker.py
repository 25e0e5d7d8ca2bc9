"""The notifier process (`python -m functions.notify.worker`, Procfile `notify`).

Two loops in one process: the event log's `notify` consumer (claims device, pairing, execution, storage and
webhook events with a lease, writes deliveries and pushes, acks; sleeps on a change stream) and the webhook
deliverer (sends due deliveries, woken at once by the consumer in this process, otherwise at the next due retry).
Killed at any point it loses nothing: unacked events and leased deliveries come back when their leases run out,
and the per-(target, event) key makes a repeat harmless.
"""

from __future__ import annotations

import logging
import threading

from functions.notify import delivering, service
from runtime import events
from runtime.clients import clients_for
from runtime.daemon import stop_on_signals
from runtime.logs import configure_logging
from runtime.settings import load_settings

log = logging.getLogger(__name__)
CONSUMER = "notify"


def run(settings, stop: threading.Event, *, sender=None, batch: int = 200, lease_seconds: float = 60.0,
        idle_seconds: float = 5.0, threads: int = 8) -> None:
    clients = clients_for(settings)
    deliverer = delivering.Deliverer(clients.db, clients.mongo, settings, sender=sender, threads=threads)

    def handle(docs):
        if service.handle_events(clients.db, clients.mongo, docs):
            deliverer.wake.set()

    sending = threading.Thread(target=deliverer.run, args=(stop,), name="webhook-deliverer", daemon=True)
    sending.start()
    try:
        events.run_consumer(clients.db, CONSUMER, handle, stop, batch=batch, lease_seconds=lease_seconds,
                            idle_seconds=idle_seconds)
    finally:
        stop.set()
        deliverer.wake.set()
        sending.join(timeout=settings.webhook_timeout_seconds + 5)
        deliverer.close()


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    stop = stop_on_signals()
    log.info("notifier running (webhooks may reach public addresses, %s and the networks admins allow)",
             ", ".join(settings.webhook_allow_nets) or "no configured network")
    run(settings, stop)


if __name__ == "__main__":
    main()
