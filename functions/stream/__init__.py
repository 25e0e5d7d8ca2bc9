"""GET /events/v1/stream: the caller's event log as Server-Sent Events (service.py says how).

In-process (the default) the gateway serves streams from this Flask app, one thread each and at most
PCLOUD_STREAM_THREADS per process; `make run` and deployments run the `stream` process instead
(gateway/stream_server.py, asyncio), which the gateway proxies to (PCLOUD_FUNCTION_STREAM_URL).
"""

from runtime.app import function_app


def openapi_apis() -> list:
    from functions.stream.routes import api

    return [api]


def create_app(settings=None):
    from functions.stream.routes import bp, init_stream

    app = function_app(__name__, settings, name="stream")
    app.register_blueprint(bp)
    init_stream(app)
    return app
