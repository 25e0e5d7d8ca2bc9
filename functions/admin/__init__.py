"""Admin API (CONTRACT §2): users (role admin|member, disabled) and groups. Admins only: the gateway asks
for the `admin` scope, which only an admin's tokens carry and only while they still are one."""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.admin.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.admin.routes import api

    app = function_app(__name__, settings, name="admin")
    app.register_blueprint(api.blueprint)
    return app
