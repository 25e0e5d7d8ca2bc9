"""At most PCLOUD_STREAM_THREADS open event streams per gateway process (in-process or proxied: either way a
stream holds one of the process's threads while it is open), so streams can never take the threads the API
answers with. Beyond: 503 `stream_capacity` at once. Deployments run the `stream` process (asyncio) for many
streams; see gateway/stream_server.py."""

from __future__ import annotations

import threading

from runtime.errors import Unavailable


class StreamThreads:
    def __init__(self, limit: int):
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def run(self, call):
        """`call()` (the WSGI app) with a thread reserved until the server closes the response it returns."""
        if not self._free.acquire(blocking=False):
            raise Unavailable(f"this server holds all the event streams it may ({self.limit}); retry in a moment",
                              code="stream_capacity", details={"limit": self.limit}, headers={"Retry-After": "5"})
        try:
            body = call()
        except BaseException:
            self._free.release()
            raise
        return _ReleasedOnClose(body, self._free.release)


class _ReleasedOnClose:
    def __init__(self, body, release):
        self.body, self._release = body, release
        self._lock = threading.Lock()

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            with self._lock:
                release, self._release = self._release, None
            if release is not None:
                release()
