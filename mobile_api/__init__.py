"""The phone's API (/mobile/v1): auth exchange, devices and push tokens, changes feed, offline ops, conflicts."""

from runtime.app import function_app

OPENAPI: dict = {"paths": {}}


def create_app(settings=None):
    from mobile_api import auth_routes, device_routes, routes

    app = function_app(__name__, settings, name="mobile_api")
    for module in (auth_routes, device_routes, routes):
        app.register_blueprint(module.bp)
        OPENAPI["paths"].update(getattr(module, "OPENAPI_PATHS", {}))
        OPENAPI.setdefault("schemas", {}).update(getattr(module, "OPENAPI_SCHEMAS", {}))
    return app
