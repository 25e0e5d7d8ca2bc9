"""The indexer process (`python -m functions.search.indexer`): the event log's `search` consumer.

It claims graph.node.* and files.node.* events with a lease, turns them into index writes (service.apply_events)
and acks them; it sleeps on a change stream until the next insert, so a mutation is findable in well under the
2 s of CONTRACT §9. Killed at any point, it loses nothing: unacked events come back when their lease runs out, and
the per-owner seq guard in the index makes a repeated or reordered event harmless.
"""

from __future__ import annotations

import logging
import threading

from functions.search import service
from runtime import events
from runtime.clients import clients_for
from runtime.daemon import stop_on_signals
from runtime.logs import configure_logging
from runtime.settings import load_settings

log = logging.getLogger(__name__)
CONSUMER = "search"


def run(settings, stop: threading.Event, *, batch: int = 500, lease_seconds: float = 60.0,
        idle_seconds: float = 5.0) -> None:
    clients = clients_for(settings)
    index = service.index_for(settings)
    events.run_consumer(clients.db, CONSUMER, lambda docs: service.apply_events(index, docs), stop, batch=batch,
                        lease_seconds=lease_seconds, idle_seconds=idle_seconds)


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    stop = stop_on_signals()
    log.info("search indexer running (%s backend)", service.index_for(settings).name)
    run(settings, stop)


if __name__ == "__main__":
    main()
