"""The Flask app every function is made from: JSON errors, shared clients, identity from the gateway."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from runtime.clients import Clients, clients_for
from runtime.errors import ApiError, BadRequest, error_body
from runtime.settings import Settings, load_settings

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
              416: "range_not_satisfiable", 429: "rate_limited", 500: "internal", 503: "unavailable"}


def function_app(import_name: str, settings: Settings | None = None, name: str | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(import_name)
    app.config["PCLOUD_SETTINGS"] = settings
    app.config["PCLOUD_FUNCTION"] = name or import_name.rsplit(".", 1)[-1]
    app.json.sort_keys = False
    init_app(app, settings)
    return app


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["pcloud"] = clients_for(settings)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def clients() -> Clients:
    return current_app.extensions["pcloud"]


def settings() -> Settings:
    return current_app.config["PCLOUD_SETTINGS"]


def json_body(required: bool = True) -> dict:
    """The request's JSON object, or a 400 that names the problem."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise BadRequest("send a JSON object body", code="invalid_json")
        return {}
    import json

    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object", code="invalid_json")
    return body


def _api_error(err: ApiError):
    resp = jsonify(err.body())
    resp.status_code = err.status
    for key, value in err.headers.items():
        resp.headers[key] = value
    return resp


def _http_error(err: HTTPException):
    status = err.code or 500
    resp = jsonify(error_body(HTTP_CODES.get(status, "error"), err.description or err.name))
    resp.status_code = status
    if status == 405 and getattr(err, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(err.valid_methods)
    return resp


def _unexpected(err: Exception):
    from pymongo.errors import PyMongoError
    from redis import RedisError

    if isinstance(err, (PyMongoError, RedisError)):
        dependency = "mongo" if isinstance(err, PyMongoError) else "redis"
        log.warning("dependency %s failed: %s", dependency, err)
        resp = jsonify(error_body("unavailable", f"{dependency} is unavailable, try again shortly",
                                  {"dependency": dependency}))
        resp.status_code = 503
        resp.headers["Retry-After"] = "5"
        return resp
    log.exception("unhandled error")
    resp = jsonify(error_body("internal", "internal error; the request id in X-Request-Id helps us find it"))
    resp.status_code = 500
    return resp


def page_params(default_limit: int = 100, max_limit: int = 1000) -> tuple[str | None, int]:
    cursor = request.args.get("cursor") or None
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return cursor, default_limit
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be a whole number", code="invalid_limit") from None
    if not 1 <= limit <= max_limit:
        raise BadRequest(f"limit must be between 1 and {max_limit}", code="invalid_limit")
    return cursor, limit
