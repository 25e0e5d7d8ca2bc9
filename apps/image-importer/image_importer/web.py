"""The app's HTTP side: PCloud POSTs each action here (CONTRACT §8) with the invocation token."""

from __future__ import annotations

import os

from flask import Flask, jsonify, request

from image_importer import service
from image_importer.pcloud import PCloud, Refused, Unavailable


def _call() -> tuple[PCloud, dict]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _BadCall("the body must be PCloud's JSON action call")
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise _BadCall("an action call carries the invocation token")
    api_url = body.get("api_url") or os.environ.get("PCLOUD_API_URL")
    if not api_url:
        raise _BadCall("no api_url to reach PCloud")
    return PCloud(api_url, auth[len("Bearer "):]), body


class _BadCall(Exception):
    pass


def _event_node(body: dict) -> dict | None:
    data = (body.get("event") or {}).get("data") or {}
    return data.get("node") if isinstance(data.get("node"), dict) else None


def _path(body: dict) -> str | None:
    params = body.get("params") or {}
    return params.get("path") or ((body.get("event") or {}).get("data") or {}).get("path")


def create_app() -> Flask:
    app = Flask(__name__)

    @app.errorhandler(_BadCall)
    def bad_call(exc):
        return jsonify({"error": {"code": "bad_call", "message": str(exc)}}), 400

    @app.errorhandler(Refused)
    def refused(exc):  # 4xx: PCloud marks the execution dead at once, with this message
        return jsonify({"error": {"code": exc.code, "message": str(exc)}}), 422

    @app.errorhandler(Unavailable)
    def unavailable(exc):  # 5xx: PCloud retries with the trigger's backoff
        return jsonify({"error": {"code": "pcloud_unavailable", "message": str(exc)}}), 503

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    @app.post("/actions/setup")
    def setup():
        api, body = _call()
        return jsonify(service.setup(api, body.get("settings") or {}))

    @app.post("/actions/import")
    def import_():
        api, body = _call()
        file_id = (body.get("params") or {}).get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise _BadCall("params.file_id is required")
        return jsonify(service.import_file(api, body.get("settings") or {}, file_id, _path(body), _event_node(body)))

    @app.post("/actions/remove")
    def remove():
        api, body = _call()
        file_id = (body.get("params") or {}).get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise _BadCall("params.file_id is required")
        node = _event_node(body) or {}
        return jsonify(service.remove(api, file_id, _path(body), node.get("kind")))

    return app
