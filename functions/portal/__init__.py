"""The portal: the web app a person uses (sign-in, files, devices, conflicts, notifications).

Server-rendered pages plus a little JavaScript (no build step) that calls the same JSON APIs the phone
uses, with the SSO cookie and the session's CSRF token. Served at /portal and /static through the gateway.
"""

from functools import partial

from runtime.app import function_app


def create_app(settings=None):
    from functions.portal import notify_settings, packages, routes, security
    from functions.portal import settings as settings_pages

    app = function_app(__name__, settings, name="portal")
    app.register_blueprint(routes.bp)
    app.register_blueprint(packages.bp)
    app.register_blueprint(settings_pages.bp)
    app.register_blueprint(notify_settings.bp)
    app.add_template_filter(routes.when, "when")
    s = app.config["PCLOUD_SETTINGS"]
    app.after_request(partial(security.apply_headers, settings=s, csp=security.content_security_policy(s)))
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 300
    return app
