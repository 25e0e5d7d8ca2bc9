"""A local stand-in for FCM HTTP v1 so tests and benchmarks run the real firebase-admin code.

It speaks the real protocol: the Google OAuth2 token endpoint (JWT-bearer grant signed with the service
account's key, verified here) and `POST /v1/projects/<project>/messages:send` with a bearer token. It records
every accepted message, and per registration token it can answer like FCM does when things go wrong:
UNREGISTERED (404), INVALID_ARGUMENT for a bad token (400), QUOTA_EXCEEDED (429 + Retry-After), INTERNAL (500),
UNAVAILABLE (503), or answer slowly.

In-process: `fake = FakeFCM().start()` (a werkzeug server on 127.0.0.1:0 in a thread).
As a process (benchmarks): `python -m tests.fakes.fcm --port N --delay-ms 20 --service-account sa.json`;
then `GET /_fake/stats` reads counters and `POST /_fake/behaviour` sets per-token behaviour.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify, request

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
# either grants FCM sends; firebase-admin asks for cloud-platform (among others)
MESSAGING_SCOPES = {"https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"}
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
MAX_PAYLOAD_BYTES = 4096

# errorCode -> (HTTP status, google.rpc status, message) as FCM answers them
ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
}


@dataclass
class Behaviour:
    """What the stand-in does for one token: answer an error and/or wait first; `times=None` means always."""

    error: str | None = None
    times: int | None = None
    retry_after: int | None = None
    delay: float = 0.0


@dataclass
class Received:
    token: str | None
    message: dict
    name: str
    at: float = field(default_factory=time.time)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that went away mid-answer (a worker SIGKILLed in a test) is expected, not news."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """A minimal HTTP/1.1 WSGI front with keep-alive, as FCM has (werkzeug's dev server closes every
    connection). Bodies are always read by Content-Length and answered with one, so a connection can
    carry the next request."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for the peer's ACK
    app = None  # set per server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ = {
            "REQUEST_METHOD": self.command, "SCRIPT_NAME": "", "PATH_INFO": unquote(path), "QUERY_STRING": query,
            "SERVER_NAME": self.server.server_address[0], "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version, "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(length),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[name] = value
        reply: dict = {}

        def start_response(status, headers, exc_info=None):
            reply["status"], reply["headers"] = status, headers

        chunks = self.app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        code, _, reason = reply["status"].partition(" ")
        self.send_response(int(code), reason)
        for key, value in reply["headers"]:
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, *args):  # quiet: tests and benchmarks send thousands
        pass


class FakeFCM:
    def __init__(self, project_id: str = "pcloud-test", delay: float = 0.0, record: bool = True):
        self.project_id = project_id
        self.delay = delay
        self.record = record
        self._lock = threading.RLock()  # wait_for's predicate may call stats() while holding it
        self._cond = threading.Condition(self._lock)
        self._public_keys: dict[str, object] = {}
        self._access_tokens: set[str] = set()
        self._behaviours: dict[str, list[Behaviour]] = {}
        self._ids = itertools.count(1)
        self.messages: list[Received] = []
        self.sent_count = 0
        self.requests_count = 0
        self.errors_count = 0
        self.token_requests = 0
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._server = None
        self._thread = None
        self.app = self._build_app()

    # ----- addresses
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    # ----- lifecycle
    def start(self, port: int = 0) -> FakeFCM:
        handler = type("Handler", (_KeepAliveHandler,), {"app": self.app})
        self._server = _Server((self.host, port), handler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-fcm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ----- test controls
    def make_service_account(self, path: Path, client_email: str | None = None) -> Path:
        """Write a service-account JSON with a fresh RSA key whose token_uri is this stand-in."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = client_email or f"push-{secrets.token_hex(4)}@{self.project_id}.iam.gserviceaccount.com"
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        info = {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri if self.port else "https://oauth2.googleapis.com/token",
        }
        with self._lock:
            self._public_keys[email] = key.public_key()
        path = Path(path)
        path.write_text(json.dumps(info))
        path.chmod(0o600)
        return path

    def behave(self, token: str, error: str | None = None, times: int | None = None,
               retry_after: int | None = None, delay: float = 0.0) -> None:
        if error is not None and error not in ERRORS:
            raise ValueError(f"unknown FCM error {error!r}; one of {sorted(ERRORS)}")
        with self._lock:
            self._behaviours.setdefault(token, []).append(Behaviour(error, times, retry_after, delay))

    def clear_behaviour(self, token: str | None = None) -> None:
        with self._lock:
            if token is None:
                self._behaviours.clear()
            else:
                self._behaviours.pop(token, None)

    def messages_for(self, token: str) -> list[dict]:
        with self._lock:
            return [r.message for r in self.messages if r.token == token]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Block until predicate(fake) is true (checked on every accepted message) or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def stats(self) -> dict:
        with self._lock:
            return {"sent": self.sent_count, "requests": self.requests_count, "errors": self.errors_count,
                    "token_requests": self.token_requests}

    # ----- protocol
    def _next_behaviour(self, token: str | None) -> Behaviour | None:
        with self._lock:
            rules = self._behaviours.get(token or "")
            if not rules:
                return None
            rule = rules[0]
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    rules.pop(0)
            return rule

    def _build_app(self) -> Flask:
        app = Flask("fake_fcm")

        def google_error(status: int, rpc_status: str, message: str, fcm_code: str | None = None,
                         extra_details=(), headers=None):
            details = list(extra_details)
            if fcm_code:
                details.insert(0, {"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
            body = {"error": {"code": status, "message": message, "status": rpc_status}}
            if details:
                body["error"]["details"] = details
            with self._lock:
                self.errors_count += 1
            return jsonify(body), status, headers or {}

        @app.post("/token")
        def token():
            if request.form.get("grant_type") != JWT_BEARER:
                return jsonify(error="unsupported_grant_type"), 400
            assertion = request.form.get("assertion", "")
            try:
                unverified = jwt.decode(assertion, options={"verify_signature": False})
                public_key = self._public_keys[unverified["iss"]]
                # google-auth always addresses the assertion to Google's endpoint, whatever token_uri says
                claims = jwt.decode(assertion, public_key, algorithms=["RS256"],
                                    audience=[self.token_uri, GOOGLE_TOKEN_AUDIENCE])
            except (jwt.PyJWTError, KeyError) as exc:
                return jsonify(error="invalid_grant", error_description=f"Invalid JWT: {exc}"), 400
            if not MESSAGING_SCOPES & set(claims.get("scope", "").split()):
                return jsonify(error="invalid_scope", error_description="no scope that allows FCM sends"), 400
            access = "ya29.fake-" + secrets.token_urlsafe(24)
            with self._lock:
                self._access_tokens.add(access)
                self.token_requests += 1
            return jsonify(access_token=access, expires_in=3599, token_type="Bearer")

        @app.post("/v1/projects/<project>/messages:send")
        def send(project):
            with self._lock:
                self.requests_count += 1
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self._access_tokens:
                return google_error(401, "UNAUTHENTICATED",
                                    "Request had invalid authentication credentials. Expected OAuth 2 access token.")
            if project != self.project_id:
                return google_error(403, "PERMISSION_DENIED", f"Permission denied on project {project}.")
            body = request.get_json(silent=True)
            message = body.get("message") if isinstance(body, dict) else None
            if not isinstance(message, dict):
                return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload: 'message' is required.")
            problem = _validate(message)
            if problem:
                return google_error(400, "INVALID_ARGUMENT", problem, "INVALID_ARGUMENT")
            token = message.get("token") or message.get("fid")
            rule = self._next_behaviour(token)
            wait = (rule.delay if rule and rule.delay else 0.0) or self.delay
            if wait:
                time.sleep(wait)
            if rule and rule.error:
                status, rpc_status, text = ERRORS[rule.error]
                headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
                extra = ()
                if rule.error == "INVALID_ARGUMENT":
                    violation = {"field": "message.token", "description": "Invalid registration token"}
                    extra = ({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]},)
                return google_error(status, rpc_status, text, rule.error, extra, headers)
            name = f"projects/{project}/messages/{next(self._ids)}"
            if body.get("validate_only"):
                return jsonify(name=name)
            with self._cond:
                self.sent_count += 1
                if self.record:
                    self.messages.append(Received(token, message, name))
                self._cond.notify_all()
            return jsonify(name=name)

        @app.get("/_fake/stats")
        def stats():
            return jsonify(self.stats())

        @app.post("/_fake/behaviour")
        def set_behaviour():
            spec = request.get_json(force=True)
            self.behave(spec["token"], spec.get("error"), spec.get("times"), spec.get("retry_after"),
                        float(spec.get("delay", 0)))
            return "", 204

        return app


def _validate(message: dict) -> str | None:
    """The checks FCM makes that our code could get wrong: one target, string data, the 4 KB payload limit."""
    targets = [k for k in ("token", "fid", "topic", "condition") if message.get(k)]
    if len(targets) != 1:
        return "Exactly one of token, fid, topic or condition must be set."
    data = message.get("data") or {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return "Invalid value at 'message.data': values must be strings."
    payload = {"data": data, "notification": message.get("notification") or {}}
    if len(json.dumps(payload, separators=(",", ":")).encode()) > MAX_PAYLOAD_BYTES:
        return "Message is too big: the payload exceeds 4096 bytes."
    android = message.get("android") or {}
    if android.get("priority") and str(android["priority"]).lower() not in ("high", "normal"):
        return "Invalid value at 'message.android.priority'."
    ttl = android.get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and ttl.endswith("s")):
        return "Invalid value at 'message.android.ttl': a duration like '3600s'."
    return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="local FCM HTTP v1 stand-in")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--project", default="pcloud-test")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer every send after this many ms")
    parser.add_argument("--service-account", type=Path, help="write a matching service-account JSON here")
    parser.add_argument("--no-record", action="store_true", help="count messages without keeping them")
    args = parser.parse_args(argv)
    fake = FakeFCM(args.project, delay=args.delay_ms / 1000.0, record=not args.no_record).start(args.port)
    if args.service_account:
        fake.make_service_account(args.service_account)
    print(json.dumps({"url": fake.url, "token_uri": fake.token_uri}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
