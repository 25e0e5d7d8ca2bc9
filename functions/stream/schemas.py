"""The stream's query and frames for /openapi.json (the frames are documented, not validated: they are SSE)."""

from __future__ import annotations

from pydantic import Field

from runtime.schemas import Query


class StreamQuery(Query):
    after: int | None = Field(None, ge=0, description="start after this seq (0 = the whole log kept); the "
                                                      "Last-Event-ID header wins; neither = from now on")


STREAM_DESCRIPTION = """\
Server-Sent Events (`text/event-stream`) carrying the caller's events of the log (GET /events/v1), as they
commit. Each event is a default `message` whose `id` is its `seq` and whose `data` is the event's JSON (the
shape of GET /events/v1 items). Resume after a disconnect with `Last-Event-ID: SEQ` (browsers send it
themselves) or `?after=SEQ`: every event after it follows, none twice.

Control frames: `event: reset` (`data.code` `cursor_expired` — the log no longer reaches back to that id —
or `cursor_unknown`; the client reloads its state, the stream goes on from `data.seq`); `event: bye`
(`data.reason` `max_duration` | `token_expired` | `session_ended` | `account_disabled`; the server closes,
reconnect with a valid credential). A comment (`: keep-alive`) comes every PCLOUD_STREAM_HEARTBEAT_SECONDS.
At most PCLOUD_STREAMS_PER_USER streams per user (429 `too_many_streams`); 503 `stream_capacity` when this
server holds all the streams it may.
"""

STREAM_RESPONSES = {
    200: {"description": "the event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    400: "invalid_parameter (Last-Event-ID or after is not a seq)",
    429: "too_many_streams",
    503: "stream_capacity",
}
