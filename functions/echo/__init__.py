"""A trivial diagnostic function: who am I, echo a JSON body. The gateway benchmark calls it too."""

from flask import jsonify, request
from pydantic import BaseModel, ConfigDict

from runtime.app import function_app, json_body
from runtime.identity import optional_identity
from runtime.schemas import Api

api = Api("echo")


class Pong(BaseModel):
    """Who the gateway says is calling."""

    pong: bool
    user_id: str | None
    request_id: str | None
    client_id: str | None = None
    scopes: list[str] | None = None
    app: str | None = None
    execution_id: str | None = None
    depth: int | None = None


class Anything(BaseModel):
    """Any JSON object."""

    model_config = ConfigDict(extra="allow")


@api.get("/echo/v1/ping", operation_id="ping", summary="Liveness through the gateway; tells who the caller is",
         responses={200: Pong})
def ping():
    ident = optional_identity()
    who = {"client_id": ident.client_id, "scopes": list(ident.scopes), "app": ident.app,
           "execution_id": ident.execution_id, "depth": ident.depth} if ident else {}
    return jsonify({"pong": True, "user_id": ident.user_id if ident else None,
                    "request_id": request.headers.get("X-Request-Id"), **who})


@api.post("/echo/v1/echo", operation_id="echo", summary="Echo a JSON object (tests body limits and JSON errors)",
          body={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
          responses={200: ("the body, unchanged", Anything), 400: "invalid_json", 413: "over the body limit"})
def echo():
    """Echoes the parsed object exactly (key order and all), so it reads the body itself."""
    return jsonify(json_body())


def openapi_apis() -> list[Api]:
    return [api]


def create_app(settings=None):
    app = function_app(__name__, settings, name="echo")
    app.register_blueprint(api.blueprint)
    return app
