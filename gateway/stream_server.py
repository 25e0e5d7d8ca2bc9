"""The `stream` process: GET /events/v1/stream on gunicorn's asyncio worker, no thread per open stream.

    gunicorn -c gateway/gunicorn_stream.conf.py gateway.stream_server:app

A stream costs a task, a queue and its socket; the few blocking calls (authenticating, reading the log on a
gap, renewing the slot on a beat) run in a small thread pool. The gateway proxies /events/v1/stream here when
PCLOUD_FUNCTION_STREAM_URL is set (what `make run`, compose and Kubernetes do); then this process trusts the
identity the gateway signed. Reached directly (an ingress sending /events/v1/stream here, so that no gateway
thread is held at all), it authenticates exactly as the gateway: the same Authenticator (a bearer token
strictly verified, or the SSO cookie), the same scope and the same per-user rate limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import parse_qs

from gateway import routing
from gateway.middleware.auth import Authenticator
from gateway.middleware.ratelimit import RateLimiter
from gateway.wsgi import Gateway
from runtime import live
from runtime import redis as redis_client
from runtime.clients import clients_for
from runtime.errors import ApiError, NotFound, Unauthorized
from runtime.identity import HEADER, decode_identity
from runtime.ids import new_id
from runtime.logs import configure_logging
from runtime.settings import Settings, load_settings
from runtime.tokens import TokenVerifier

log = logging.getLogger(__name__)
PATH = "/events/v1/stream"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
BLOCKING_THREADS = 16  # for the short blocking calls of every stream in this process together


class StreamServer:
    def __init__(self, settings: Settings):
        from functions.stream import service

        self.settings = settings
        self.service = service
        self.spec = next(s for s in routing.FUNCTIONS if s.name == "stream")
        clients = clients_for(settings)
        self.db = clients.db
        self.secret = clients.keys.secret("gateway-identity")
        audiences = {"pcloud", *(c.client_id for c in settings.sso_clients)}
        self.verifier = TokenVerifier(clients.keys.public_jwks, settings.public_url, audiences)
        self.auth = Authenticator(self.verifier, clients.db.sso_sessions, clients.db)
        redis = redis_client.connect(settings.redis_url, timeout=0.5)
        self.limiter = RateLimiter(redis, clients.redis_keys, settings.rate_limit_per_minute)
        self.slots = service.StreamSlots(redis, clients.redis_keys, settings.streams_per_user,
                                         lease_seconds=3 * settings.stream_heartbeat_seconds + 5)
        self.hub = service.Hub(self.db, live=live.Subscriber(clients.redis, clients.redis_keys))
        self.pool = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="stream-io")
        self.open = 0

    async def blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(fn, *args))

    # --- ASGI ------------------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":
            return
        environ = _environ(scope)
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID.match(rid):
            rid = new_id()
        try:
            if scope["path"] == "/healthz":
                return await _json(send, 200, {"status": "ok", "streams": self.open}, rid)
            if scope["path"] != PATH:
                raise NotFound(f"no such endpoint here: {scope['path']}", code="not_found")
            if scope["method"] not in ("GET", "HEAD"):
                raise ApiError("the event stream is read with GET", code="method_not_allowed", status=405)
            stream = await self.blocking(self._open, environ)
        except ApiError as err:
            return await _json(send, err.status, err.body(), rid, err.headers)
        await self._serve(stream, receive, send, rid)

    def _identity(self, environ):
        """The gateway's signed identity when proxied; otherwise the gateway's own checks, here."""
        signed = environ.get("HTTP_" + HEADER.upper().replace("-", "_"))
        if signed:
            identity = decode_identity(signed, self.secret)
            if identity is None:
                raise Unauthorized("the identity header is not one the gateway signed", code="unauthorized")
            return identity
        known = self.auth.known_user(environ)
        self.limiter.check(f"u:{known}" if known else f"ip:{environ.get('REMOTE_ADDR') or 'unknown'}")
        identity = self.auth.identify(environ, allow_cookie=self.spec.cookie_auth)
        if identity is None:
            raise Unauthorized("sign in first: send Authorization: Bearer <access_token>", code="unauthorized",
                               headers={"WWW-Authenticate": 'Bearer realm="pcloud"'})
        Gateway._check_scope(identity, self.spec.scope_for(PATH, "GET"))
        return identity

    def _open(self, environ):
        identity = self._identity(environ)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        expires = None
        if authorization[:7].lower() == "bearer ":
            expires = float(self.verifier.verify(authorization[7:].strip())["exp"])
        elif identity.via == "bearer":
            raise Unauthorized("a bearer stream needs its token", code="invalid_token")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        return self.service.open_stream(
            self.db, identity, last_event_id=environ.get("HTTP_LAST_EVENT_ID"),
            after=(query.get("after") or [None])[0], slots=self.slots,
            heartbeat_seconds=self.settings.stream_heartbeat_seconds, max_seconds=self.settings.stream_max_seconds,
            token_expires=expires)

    async def _serve(self, stream, receive, send, rid):
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        gone = asyncio.ensure_future(_disconnected(receive))
        self.open += 1
        try:
            stream.attach(self.hub, lambda item: loop.call_soon_threadsafe(inbox.put_nowait, item))
            headers = [(k.encode(), v.encode()) for k, v in self.service.HEADERS]
            headers += [(b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await _body(send, await self.blocking(stream.opening))
            while not stream.done and not gone.done():
                waiting = asyncio.ensure_future(inbox.get())
                done, _ = await asyncio.wait({waiting, gone}, timeout=stream.seconds_to_wait(),
                                             return_when=asyncio.FIRST_COMPLETED)
                if waiting not in done:
                    waiting.cancel()
                    if gone.done():
                        break
                    chunk = await self.blocking(stream.beat)
                else:
                    items = [waiting.result()]
                    while not inbox.empty():
                        items.append(inbox.get_nowait())
                    chunk = (await self.blocking(stream.deliver, items) if stream.needs_read(items)
                             else stream.deliver(items))
                    if stream.seconds_to_wait() <= 0:
                        chunk += await self.blocking(stream.beat)
                if chunk:
                    await _body(send, chunk)
            if not gone.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, RuntimeError) as exc:
            log.debug("stream ended: %s", exc)  # the client went away mid-write
        finally:
            self.open -= 1
            gone.cancel()
            await self.blocking(stream.close)


async def _body(send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _json(send, status: int, payload: dict, rid: str, extra: dict | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-request-id", rid.encode()), (b"cache-control", b"no-store")]
    headers += [(k.lower().encode(), str(v).encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _environ(scope) -> dict:
    """The WSGI-style view the gateway's Authenticator and rate limiter read."""
    environ = {"REQUEST_METHOD": scope["method"], "PATH_INFO": scope["path"],
               "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
               "REMOTE_ADDR": (scope.get("client") or ("", 0))[0]}
    for name, value in scope.get("headers", []):
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        environ[key] = environ[key] + ", " + text if key in environ and key != "HTTP_COOKIE" else text
    return environ


class _LazyApp:
    """gunicorn imports `gateway.stream_server:app`; the server is built in the worker, not at import."""

    def __init__(self):
        self._app = None
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    settings = load_settings()
                    configure_logging(settings.log_level)
                    self._app = StreamServer(settings)
        return await self._app(scope, receive, send)


app = _LazyApp()
