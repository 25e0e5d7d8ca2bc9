"""HTTP for /events/v1/stream in-process: a WSGI response that holds its thread while the stream is open."""

from __future__ import annotations

import queue

from flask import Response, request

from functions.stream import service
from functions.stream.schemas import STREAM_DESCRIPTION, STREAM_RESPONSES, StreamQuery
from runtime import live
from runtime import redis as redis_client
from runtime.errors import Unauthorized
from runtime.identity import current_identity
from runtime.schemas import Api
from runtime.tokens import TokenVerifier

api = Api("stream", tag="events", import_name=__name__)
bp = api.blueprint
EXTENSION = "pcloud_stream"


class StreamParts:
    """What every stream of one app shares: the hub, the cap, the verifier that tells a token's expiry."""

    def __init__(self, app_settings, app_clients):
        self.settings = app_settings
        self.db = app_clients.db
        redis = redis_client.connect(app_settings.redis_url, timeout=0.5)
        self.hub = service.Hub(self.db, live=live.Subscriber(app_clients.redis, app_clients.redis_keys))
        self.slots = service.StreamSlots(redis, app_clients.redis_keys, app_settings.streams_per_user,
                                         lease_seconds=3 * app_settings.stream_heartbeat_seconds + 5)
        audiences = {"pcloud", *(c.client_id for c in app_settings.sso_clients)}
        self.verifier = TokenVerifier(app_clients.keys.public_jwks, app_settings.public_url, audiences)

    def token_expires(self, authorization: str | None) -> float | None:
        """A bearer stream ends when its token does (the gateway verified it; this re-reads `exp`)."""
        if not authorization or not authorization[:7].lower() == "bearer ":
            return None
        return float(self.verifier.verify(authorization[7:].strip())["exp"])

    def open(self, identity, last_event_id, after, authorization) -> service.Stream:
        if identity.via == "bearer" and not authorization:
            raise Unauthorized("a bearer stream needs its token", code="invalid_token")
        return service.open_stream(self.db, identity, last_event_id=last_event_id, after=after, slots=self.slots,
                                   heartbeat_seconds=self.settings.stream_heartbeat_seconds,
                                   max_seconds=self.settings.stream_max_seconds,
                                   token_expires=self.token_expires(authorization))


def init_stream(app) -> None:
    app.extensions[EXTENSION] = StreamParts(app.config["PCLOUD_SETTINGS"], app.extensions["pcloud"])


@api.get("/events/v1/stream", operation_id="streamEvents", summary="The caller's events as they happen (SSE)",
         description=STREAM_DESCRIPTION, query=StreamQuery, responses=STREAM_RESPONSES)
def stream():
    from flask import current_app

    parts: StreamParts = current_app.extensions[EXTENSION]
    opened = parts.open(current_identity(), request.headers.get("Last-Event-ID"), request.args.get("after"),
                        request.headers.get("Authorization"))
    return Response(_ThreadStream(parts.hub, opened), headers=service.HEADERS)


class _ThreadStream:
    """The WSGI body: frames as they come; `close()` (the server calls it, also when the client went away
    before the first frame) frees the slot."""

    def __init__(self, hub, stream: service.Stream):
        self.stream = stream
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        stream.attach(hub, self.inbox.put)

    def __iter__(self):
        stream = self.stream
        yield stream.opening()
        while not stream.done:
            wait = stream.seconds_to_wait()
            try:
                if wait <= 0:
                    raise queue.Empty
                items = [self.inbox.get(timeout=wait)]
            except queue.Empty:
                yield stream.beat()
                continue
            while True:
                try:
                    items.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            chunk = stream.deliver(items)
            if chunk:
                yield chunk

    def close(self):
        self.stream.close()

