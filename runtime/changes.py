"""Change streams used as doorbells and feeds: a process learns of an insert when it commits, not at its next poll.

`Doorbell` wakes a worker when a matching document is inserted into a collection (the event log's consumers,
the push relay's outbox); `InsertFeed` hands over every event inserted into the log (the realtime stream). Both
only say "look now": the collections stay the truth, so anything missed while a stream was down is found by
reading them again. A server without change streams degrades to a short sleep.
"""

from __future__ import annotations

import logging
import time

from pymongo.errors import InvalidOperation, PyMongoError

log = logging.getLogger(__name__)


class _Watch:
    """One change stream that is opened lazily and closed quietly."""

    _stream = None

    @property
    def watching(self) -> bool:
        """False while there is no change stream (the server has none, or it broke): look at the collection."""
        return self._stream is not None

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except PyMongoError:
                pass
            self._stream = None


class Doorbell(_Watch):
    """Rings when a document matching `match` is inserted into `collection`.

    Open it before the first look so nothing committed in between is missed. `wait(timeout)` returns True when an
    insert arrived (or the stream broke: something may have been missed), False on timeout.
    """

    def __init__(self, collection, match: dict, what: str, await_ms: int = 200, fallback_sleep: float = 0.2):
        self._collection, self._what = collection, what
        self._pipeline = [{"$match": {"operationType": "insert", **{f"fullDocument.{k}": v for k, v in match.items()}}}]
        self._await_ms, self.fallback_sleep = await_ms, fallback_sleep
        self._open()

    def _open(self) -> None:
        try:
            self._stream = self._collection.watch(self._pipeline, max_await_time_ms=self._await_ms)
        except PyMongoError as exc:
            log.warning("no change stream for %s (%s); looking every %s s instead", self._what, exc,
                        self.fallback_sleep)
            self._stream = None

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._stream is None:
                time.sleep(min(self.fallback_sleep, max(0.0, deadline - time.monotonic())))
                self._open()
            else:
                try:
                    if self._stream.try_next() is not None:
                        return True
                except PyMongoError as exc:
                    log.warning("change stream for %s broke (%s); reopening", self._what, exc)
                    self.close()
                    self._open()
                    return True  # something may have been missed while it was down: look
            if time.monotonic() >= deadline:
                return False


def outbox_doorbell(db, types: list[str]) -> Doorbell:
    """Wakes the push relay when an outbox event of a type it carries is inserted (its old poll was 20 ms)."""
    return Doorbell(db.outbox, {"type": {"$in": list(types)}}, "outbox relay", await_ms=50, fallback_sleep=0.02)


class InsertFeed(_Watch):
    """Every event inserted into the log, in commit order: what the realtime stream (functions/stream) fans out
    to browsers. Per owner, seqs arrive increasing, since a lower seq commits first (runtime/events.py); the log
    stays the truth, so a reader that sees a gap reads the log.

    `next()` returns the next inserted event as stored, None when nothing arrived within `max_await_ms`, or
    RESYNC after the stream broke and was reopened (inserts may have been missed: read the log again).
    """

    RESYNC = object()

    def __init__(self, db, max_await_ms: int = 500):
        self._db, self._await = db, max_await_ms

    def open(self) -> None:
        """Start watching now (inserts from this moment on are seen); `next` opens it when not yet open."""
        if self._stream is None:
            self._stream = self._db.events.watch([{"$match": {"operationType": "insert"}}],
                                                 max_await_time_ms=self._await)

    def next(self):
        try:
            self.open()
            change = self._stream.try_next()
        except InvalidOperation:
            raise  # the client was closed: this process is shutting down, not a broken stream
        except PyMongoError as exc:
            log.warning("change stream on events broke (%s); reopening", exc)
            self.close()
            return self.RESYNC
        return change["fullDocument"] if change is not None else None
