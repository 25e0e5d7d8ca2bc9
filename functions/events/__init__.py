"""GET /events/v1: the caller's slice of the event log (CONTRACT §8). The log itself is runtime/events.py."""

from runtime.app import function_app


def openapi_apis() -> list:
    from functions.events.routes import api

    return [api]


def create_app(settings=None):
    from functions.events.routes import bp

    app = function_app(__name__, settings, name="events")
    app.register_blueprint(bp)
    return app
