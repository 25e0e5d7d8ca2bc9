"""The app's HTTP side: PCloud POSTs each action here (CONTRACT §8) with the invocation token."""

from __future__ import annotations

import os

from flask import Flask, jsonify, request

from face_detector import service
from face_detector.model import load_model
from face_detector.pcloud import PCloud, Refused, Unavailable


class _BadCall(Exception):
    pass


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


def _param(body: dict, name: str) -> str:
    value = (body.get("params") or {}).get(name)
    if not isinstance(value, str) or not value:
        raise _BadCall(f"params.{name} is required")
    return value


def create_app(model_name: str | None = None) -> Flask:
    """The model is loaded on the first detection, not at import or start-up (its weights take a moment)."""
    app = Flask(__name__)
    chosen = model_name or os.environ.get("FACES_MODEL", "dlib")

    @app.errorhandler(_BadCall)
    def bad_call(exc):
        return jsonify({"error": {"code": "bad_call", "message": str(exc)}}), 400

    @app.errorhandler(service.BadParams)
    def bad_params(exc):
        return jsonify({"error": {"code": "invalid_params", "message": str(exc)}}), 400

    @app.errorhandler(Refused)
    def refused(exc):  # 4xx: PCloud marks the execution dead at once, with this message
        return jsonify({"error": {"code": exc.code, "message": str(exc)}}), 422

    @app.errorhandler(Unavailable)
    def unavailable(exc):  # 5xx: PCloud retries with the trigger's backoff
        return jsonify({"error": {"code": "pcloud_unavailable", "message": str(exc)}}), 503

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    @app.post("/actions/detect")
    def detect():
        api, body = _call()
        return jsonify(service.detect(api, load_model(chosen), body.get("settings") or {}, _param(body, "image_id")))

    @app.post("/actions/forget-image")
    def forget_image():
        api, body = _call()
        return jsonify(service.forget_image(api, _param(body, "image_id")))

    @app.post("/actions/person-changed")
    def person_changed():
        api, body = _call()
        return jsonify(service.person_changed(api, _param(body, "person_id")))

    @app.post("/actions/merge-people")
    def merge_people():
        api, body = _call()
        params = body.get("params") or {}
        return jsonify(service.merge_people(api, params.get("into"), params.get("from")))

    @app.post("/actions/recluster")
    def recluster():
        api, body = _call()
        return jsonify(service.recluster(api, body.get("settings") or {}))

    return app
