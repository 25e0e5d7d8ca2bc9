"""Account API (`/account/v1`): the signed-in user's own profile, linked sign-in identities and sessions.

First-party only (the portal with its cookie, the phone with its token): a sibling app or an app invocation
never reaches it, since ending someone's sessions or renaming them is not something a delegated token may do.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.account.routes import api

    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    from functions.account.routes import api

    app = function_app(__name__, settings, name="account")
    app.register_blueprint(api.blueprint)
    return app
