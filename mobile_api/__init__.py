"""The phone's API (/mobile/v1): auth exchange, devices and push tokens, changes feed, offline ops, conflicts."""

from runtime.app import function_app


def openapi_apis() -> list:
    from mobile_api import auth_routes, device_routes, routes

    return [auth_routes.api, device_routes.api, routes.api]


def create_app(settings=None):
    app = function_app(__name__, settings, name="mobile_api")
    for api in openapi_apis():
        app.register_blueprint(api.blueprint)
    return app
