"""Is the listener behind? A device is not blamed for our own backlog (see sessions.deadline_decision)."""

from __future__ import annotations

import logging
import threading
import time

from runtime import amqp
from runtime.errors import Unavailable

log = logging.getLogger(__name__)


class BrokerBacklog:
    """Are device events waiting in the server's queue? Asked at most every `every` seconds."""

    def __init__(self, publisher, every: float = 0.5):
        self.publisher = publisher
        self.every = every
        self._checked = 0.0
        self._value = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked < self.every:
                return self._value
            try:
                self._value = self.publisher.queue_depth(amqp.EVENTS_QUEUE) > 0
            except Unavailable as exc:
                log.warning("could not read the device events backlog: %s", exc)
                self._value = False
            self._checked = time.monotonic()
            return self._value
