"""The gateway WSGI app: request id, access log, limits, auth, CORS, health, metrics, routing."""

from __future__ import annotations

import json
import logging
import re
import threading
import time

from pymongo.errors import PyMongoError

from gateway import routing
from gateway.middleware import health, metrics
from gateway.middleware.auth import Authenticator
from gateway.middleware.cors import Cors
from gateway.middleware.headers import security_headers
from gateway.middleware.longpoll import LongPollLimiter, is_long_poll
from gateway.middleware.proxies import trusted_proxies
from gateway.middleware.ratelimit import RateLimiter
from gateway.middleware.streams import StreamThreads
from gateway.proxy import ProxyApp
from runtime.clients import clients_for
from runtime.errors import ApiError, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from runtime.identity import ADMIN_SCOPE, ENVIRON_KEY, Identity
from runtime.ids import new_id
from runtime.logs import configure_logging, request_id_var
from runtime.settings import Settings, load_settings
from runtime.tokens import TokenVerifier

log = logging.getLogger("pcloud.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
JSON_HEADERS = [("Content-Type", "application/json")]


class Gateway:
    def __init__(self, settings: Settings, functions=routing.FUNCTIONS, redis_timeout: float = 0.5):
        self.settings = settings
        self.functions = functions
        self.clients = clients_for(settings)
        self.apps = {}
        for spec in functions:
            url = settings.function_urls.get(spec.name)
            if url:
                # a stream is quiet between heartbeats: the read timeout must outlast two of them
                quiet = 2 * settings.stream_heartbeat_seconds + 5 if spec.streams else 0
                self.apps[spec.name] = ProxyApp(url, self.clients.keys.secret("gateway-identity"),
                                                timeout=max(settings.http_timeout_seconds, 30.0, quiet))
            else:
                self.apps[spec.name] = spec.load_factory()(settings)
        self.verifier = TokenVerifier(self.clients.keys.public_jwks, settings.public_url, self._audiences)
        self.auth = Authenticator(self.verifier, self.clients.db.sso_sessions, self.clients.db)
        from runtime import redis as redis_client

        redis = redis_client.connect(settings.redis_url, timeout=redis_timeout)
        self.limiter = RateLimiter(redis, self.clients.redis_keys, settings.rate_limit_per_minute)
        self.long_polls = LongPollLimiter(redis, self.clients.redis_keys, settings.long_polls_per_user)
        self.stream_threads = StreamThreads(settings.stream_threads)
        self._entry = trusted_proxies(self._handle, settings.trusted_proxies)
        self.cors = Cors(settings)
        self._openapi = None
        self._openapi_lock = threading.Lock()

    def _audiences(self) -> set[str]:
        return {"pcloud", *(c.client_id for c in self.settings.sso_clients)}

    # --- WSGI --------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        """Behind PCLOUD_TRUSTED_PROXIES, X-Forwarded-For/-Proto are applied first (Werkzeug ProxyFix)."""
        return self._entry(environ, start_response)

    def _handle(self, environ, start_response):
        started = time.perf_counter()
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID.match(rid):
            rid = new_id()
        environ["HTTP_X_REQUEST_ID"] = rid
        token = request_id_var.set(rid)
        captured = {"status": 500, "function": "gateway"}
        origin = self.cors.allowed(environ)
        https = self.settings.is_https or environ.get("wsgi.url_scheme") == "https"

        def respond(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            headers = [h for h in headers if h[0].lower() != "x-request-id"]
            headers.append(("X-Request-Id", rid))
            headers = security_headers(headers, https)
            if origin:
                headers.extend(self.cors.headers(origin))
            return start_response(status, headers, exc_info)

        try:
            return self._dispatch(environ, respond, captured, origin)
        except ApiError as err:
            return self._error(respond, err)
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe(captured["function"], environ.get("REQUEST_METHOD", "?"), captured["status"], elapsed)
            log.info("%s %s %s %.1fms", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                     captured["status"], elapsed * 1000,
                     extra={"fields": {"function": captured["function"], "status": captured["status"],
                                       "ms": round(elapsed * 1000, 2), "user": getattr(environ.get(ENVIRON_KEY),
                                                                                     "user_id", None)}})
            request_id_var.reset(token)

    def _dispatch(self, environ, respond, captured, origin):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        builtin = self.BUILTINS.get(path)
        if builtin is not None:
            captured["function"] = "gateway"
            return builtin(self, environ, respond)
        spec = routing.match(path, self.functions)
        if spec is None:
            if path == "/":
                respond("302 Found", [("Location", "/portal/"), ("Content-Length", "0")])
                return [b""]
            raise NotFound(f"no such endpoint: {path}", code="not_found")
        captured["function"] = spec.name
        if method == "OPTIONS" and origin and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            respond("204 No Content", [("Content-Length", "0")] + self.cors.headers(origin, preflight=True)[3:])
            return [b""]
        self._limit_body(environ, spec.body_limit)
        environ.pop(ENVIRON_KEY, None)
        # counted before authenticating, so a flood of bad tokens is limited too (and costs no RSA check past
        # the limit): a token already verified counts for its user, anything else for the client's address
        known = self.auth.known_user(environ)
        self.limiter.check(f"u:{known}" if known else f"ip:{_client_ip(environ)}")
        policy = spec.auth_for(path)
        identity = self.auth.identify(environ, allow_cookie=spec.cookie_auth) if policy != "none" else None
        if policy == "required" and identity is None:
            raise Unauthorized("sign in first: send Authorization: Bearer <access_token>", code="unauthorized",
                               headers={"WWW-Authenticate": 'Bearer realm="pcloud"'})
        if identity is not None:
            self._check_scope(identity, spec.scope_for(path, method))
            environ[ENVIRON_KEY] = identity
            if spec.streams:
                return self.stream_threads.run(lambda: self.apps[spec.name](environ, respond))
            if is_long_poll(environ, spec.long_poll_params):
                with self.long_polls.slot(identity.user_id):
                    return self.apps[spec.name](environ, respond)
        return self.apps[spec.name](environ, respond)

    @staticmethod
    def _check_scope(identity: Identity, required: str | None) -> None:
        """403 when the token does not carry what this call needs (CONTRACT §2)."""
        if required is None or identity.has_scope(required):
            return
        details = {"required": required}
        challenge = {"WWW-Authenticate": f'Bearer realm="pcloud", error="insufficient_scope", scope="{required}"'}
        if identity.app:
            raise Forbidden(f"the app {identity.app!r} was not granted {required!r}", code="not_granted",
                            details=details, headers=challenge)
        if required == ADMIN_SCOPE:
            raise Forbidden("only an admin may do this", code="forbidden", details=details)
        raise Forbidden(f"this token lacks the scope {required!r}", code="insufficient_scope", details=details,
                        headers=challenge)

    def _limit_body(self, environ, limit: int) -> None:
        raw = environ.get("CONTENT_LENGTH")
        if raw:
            try:
                length = int(raw)
            except ValueError:
                raise ApiError("Content-Length is not a number", code="bad_request") from None
            if length > limit:
                raise PayloadTooLarge(f"body of {length} bytes is over this endpoint's limit of {limit}",
                                      details={"limit": limit})
        elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], limit)

    def _error(self, respond, err: ApiError):
        body = json.dumps(err.body()).encode()
        status = f"{err.status} {_REASONS.get(err.status, 'Error')}"
        respond(status, JSON_HEADERS + [("Content-Length", str(len(body)))] + list(err.headers.items()))
        return [body]

    # --- built-in endpoints -------------------------------------------------------------------
    def _json(self, respond, status: str, payload: dict, extra=()):
        body = json.dumps(payload).encode()
        respond(status, JSON_HEADERS + [("Content-Length", str(len(body))), ("Cache-Control", "no-store"), *extra])
        return [body]

    def healthz(self, environ, respond):
        return self._json(respond, "200 OK", {"status": "ok"})

    def readyz(self, environ, respond):
        checks = health.readiness(self.clients)
        ok = all(v == "ok" for v in checks.values())
        return self._json(respond, "200 OK" if ok else "503 Service Unavailable",
                          {"status": "ok" if ok else "unavailable", "checks": checks})

    def metrics_view(self, environ, respond):
        body, content_type = metrics.render(self.settings.metrics_dir)
        body += _storage_metrics(self.clients)
        respond("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def openapi(self, environ, respond):
        with self._openapi_lock:
            if self._openapi is None:
                from gateway.openapi import assemble

                self._openapi = assemble(self.settings, self.functions)
        return self._json(respond, "200 OK", self._openapi)

    BUILTINS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view, "/openapi.json": openapi}


class _CappedInput:
    """A chunked body may not say its length: count while the function reads, stop at the limit."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.read_so_far = stream, limit, 0

    def _count(self, data: bytes) -> bytes:
        self.read_so_far += len(data)
        if self.read_so_far > self.limit:
            raise PayloadTooLarge(f"body is over this endpoint's limit of {self.limit} bytes",
                                  details={"limit": self.limit})
        return data

    def read(self, size: int = -1) -> bytes:
        return self._count(self.stream.read(size) if size is not None and size >= 0 else self.stream.read())

    def readline(self, size: int = -1) -> bytes:
        return self._count(self.stream.readline(size))

    def __iter__(self):
        for line in self.stream:
            yield self._count(line)


def _client_ip(environ) -> str:
    return environ.get("REMOTE_ADDR") or "unknown"


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 410: "Gone", 413: "Payload Too Large", 416: "Range Not Satisfiable",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def create_gateway(settings: Settings | None = None) -> Gateway:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    gateway = Gateway(settings)
    try:
        gateway.clients.ensure_indexes()
    except PyMongoError as exc:  # start anyway: /readyz reports the database, requests get a JSON 503
        logging.getLogger(__name__).warning("could not ensure indexes at start-up: %s", exc)
    return gateway


class _LazyApp:
    """gunicorn imports `gateway.wsgi:app`; the gateway is built in the worker, not at import."""

    def __init__(self):
        self._app = None
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_gateway()
        return self._app(environ, start_response)


app = _LazyApp()


def _storage_metrics(clients) -> bytes:
    """Replica placement progress and lag (functions/files/replication.py), read from the database."""
    from functions.files.service import storage_metrics

    try:
        return storage_metrics(clients).encode()
    except (PyMongoError, ApiError) as exc:
        log.warning("metrics: storage placement figures unavailable: %s", exc)
        return b""
