"""The sso function (being built: see its issue)."""

from runtime.app import function_app

OPENAPI: dict = {}


def create_app(settings=None):
    return function_app(__name__, settings, name="sso")
