"""What every HTTP stand-in shares: serve its Flask app on loopback in a thread (tests) or in the foreground
(`python -m devtools.google`, the demo sign-in of `make run`; `python -m tests.fakes.<name>` for the test-only ones)."""

from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class ServedApp:
    """Mixin: subclasses set `self.app` (a Flask app); `url` is known once the server is bound."""

    app = None
    url = ""
    _server = None

    def _bind(self, host: str, port: int):
        self._server = make_server(host, port, self.app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        return self._server

    def start(self, port: int = 0, host: str = "127.0.0.1"):
        server = self._bind(host, port)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self, host: str, port: int, banner) -> None:
        """Foreground server for the CLI; `banner(self)` is printed once the address is known."""
        server = self._bind(host, port)
        print(banner(self), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
