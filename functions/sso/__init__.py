"""The sign-in center (CONTRACT §2): Google and Facebook sign-in, the SSO session cookie, and an OpenID
Provider for sibling web apps. The gateway gives it no identity (auth "none"): it reads its own cookie and
verifies Bearer tokens itself at /auth/userinfo."""

from __future__ import annotations

from runtime.app import function_app


def openapi_apis() -> list:
    from functions.sso.routes import api

    return [api]


def create_app(settings=None):
    from functions.sso import routes
    from runtime.tokens import TokenVerifier

    app = function_app(__name__, settings, name="sso")
    cfg = app.config["PCLOUD_SETTINGS"]
    keys = app.extensions["pcloud"].keys
    audiences = {"pcloud", *(c.client_id for c in cfg.sso_clients)}
    app.extensions["sso_verifier"] = TokenVerifier(keys.public_jwks, cfg.public_url, audiences)
    app.register_blueprint(routes.api.blueprint)
    app.context_processor(lambda: {"csp_nonce": routes.csp_nonce()})
    app.after_request(lambda resp: routes.page_headers(resp, cfg))
    return app
