"""A trivial diagnostic function: who am I, echo a JSON body. The gateway benchmark calls it too."""

from flask import Blueprint, jsonify, request

from runtime.app import function_app, json_body
from runtime.identity import optional_identity

bp = Blueprint("echo", __name__)

OPENAPI = {"paths": {
    "/echo/v1/ping": {"get": {"summary": "Liveness through the gateway; tells who the caller is", "security": [],
                              "responses": {"200": {"description": "{pong, user_id}"}}}},
    "/echo/v1/echo": {"post": {"summary": "Echo a JSON object (tests body limits and JSON errors)",
                               "responses": {"200": {"description": "the body"}}}},
}}


@bp.get("/echo/v1/ping")
def ping():
    ident = optional_identity()
    return jsonify({"pong": True, "user_id": ident.user_id if ident else None,
                    "request_id": request.headers.get("X-Request-Id")})


@bp.post("/echo/v1/echo")
def echo():
    return jsonify(json_body())


def create_app(settings=None):
    app = function_app(__name__, settings, name="echo")
    app.register_blueprint(bp)
    return app
