"""GET /events/v1: the caller's slice of the event log (CONTRACT §8). The log itself is runtime/events.py."""

from runtime.app import function_app

OPENAPI = {"paths": {
    "/events/v1": {"get": {
        "operationId": "listEvents",
        "summary": "The caller's events, oldest first (graph, files, devices, apps)",
        "parameters": [
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0},
             "description": "return events with seq greater than this (the last seq you saw)"},
            {"name": "type", "in": "query", "schema": {"type": "string"},
             "description": "type prefix in whole dotted segments, e.g. files.node or graph.node.created"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        ],
        "responses": {"200": {"description": "{items: [event], next_cursor: seq of the last item | null}"},
                      "400": {"description": "bad parameter"}},
    }},
}}


def create_app(settings=None):
    from functions.events.routes import bp

    app = function_app(__name__, settings, name="events")
    app.register_blueprint(bp)
    return app
