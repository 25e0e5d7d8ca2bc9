"""What every long-running process (the Procfile's lines) does the same way at start-up."""

from __future__ import annotations

import signal
import threading


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """An event set by SIGTERM (supervisord, systemd, Kubernetes) or SIGINT (Ctrl-C): the loop finishes its batch
    and returns instead of dying mid-write."""
    stop = stop if stop is not None else threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop
