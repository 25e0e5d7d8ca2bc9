"""A local webhook receiver (what a user's server would be), on 127.0.0.1, for tests and benchmarks.

It verifies every delivery's PCloud-Signature with the secret it is given (as a real receiver must, with the
raw body), records what arrived, and answers with the statuses it was told to (`script`: a list consumed one per
request, then `default`; an entry may be `(status, {header: value})`, e.g. `(503, {"Retry-After": "2"})`).
Keep-alive HTTP/1.1, so the deliverer's connection reuse is measured honestly.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from functions.notify import signing


@dataclass
class Arrival:
    path: str
    headers: dict
    body: bytes
    verified: bool | None
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.secret: str | None = None
        self.arrivals: list[Arrival] = []
        self.script: list[int] = []
        self.default = 200
        self.redirect_to: str | None = None
        self.keep_bodies = True  # a benchmark's receiver only counts
        self.received = 0
        self.verified = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                secret = receiver.secret
                verified = (signing.verify(self.headers.get(signing.HEADER, ""), raw, secret)
                            if secret else None)
                with receiver.lock:
                    receiver.received += 1
                    receiver.verified += bool(verified)
                    if receiver.keep_bodies:
                        receiver.arrivals.append(Arrival(self.path, dict(self.headers), raw, verified))
                    status = receiver.script.pop(0) if receiver.script else receiver.default
                status, extra = status if isinstance(status, tuple) else (status, {})
                answer = b'{"ok":true}' if status < 300 else b'{"error":"scripted"}'
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to or "http://127.0.0.1:1/")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self):  # noqa: N802 - the benchmark's counters
                with receiver.lock:
                    stats = {"received": receiver.received, "verified": receiver.verified,
                             "failed_verification": receiver.received - receiver.verified}
                answer = json.dumps(stats).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = _Server((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


class StaticResolver:
    """A stand-in for DNS: names → addresses as a test says (a rebinding name answers differently later)."""

    name = "static"

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.asked: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        found = self.answers.get(host)
        if found is None:
            raise OSError(f"{host}: no such name")
        return list(found)


def main() -> None:
    """As a process (benchmarks): `python -m tests.fakes.webhook_receiver --port N [--secret S]`;
    `GET /_stats` answers {"received", "verified", "failed_verification"}."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", default=None)
    args = parser.parse_args()
    receiver = WebhookReceiver(port=args.port)
    receiver.secret = args.secret
    receiver.keep_bodies = False
    receiver.server.serve_forever()


if __name__ == "__main__":
    main()
