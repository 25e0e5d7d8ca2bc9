"""Serves the gallery's static files at /apps/photos-ui/ (PCloud proxies that prefix to this runtime)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, send_from_directory

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app() -> Flask:
    app = Flask(__name__, static_folder=None)

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-cache")
        return response

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/<path:name>")
    def asset(name: str):
        return send_from_directory(STATIC, name)  # safe_join refuses .. and absolute paths (404)

    return app
