"""The sign-in center (CONTRACT §2): Google and Facebook sign-in, the SSO session cookie, and an OpenID
Provider for sibling web apps. The gateway gives it no identity (auth "none"): it reads its own cookie and
verifies Bearer tokens itself at /auth/userinfo."""

from __future__ import annotations

from runtime.app import function_app

_PAGE = {"200": {"description": "an HTML page"}}
_REDIRECT = {"302": {"description": "redirect"}}
_OAUTH_ERROR = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}
_TOKENS = {"type": "object", "required": ["access_token", "token_type", "expires_in", "refresh_token"],
           "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string"},
                          "expires_in": {"type": "integer"}, "refresh_token": {"type": "string"},
                          "id_token": {"type": "string"}, "scope": {"type": "string"}}}


def _q(name: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string"}}


_PROVIDER = {"name": "provider", "in": "path", "required": True,
             "schema": {"type": "string", "enum": ["google", "facebook"]}}

OPENAPI = {"paths": {
    "/auth/login": {"get": {"summary": "Sign-in chooser page listing the configured providers", "security": [],
                            "parameters": [_q("next")], "responses": {**_PAGE, "400": {"description": "bad next"}}}},
    "/auth/login/{provider}": {"get": {
        "summary": "Start signing in: 302 to the provider (state, nonce, PKCE)", "security": [],
        "parameters": [_PROVIDER, _q("next")],
        "responses": {**_REDIRECT, "400": {"description": "next is not same-origin nor a registered redirect URI"},
                      "404": {"description": "provider not configured"},
                      "503": {"description": "provider unreachable"}}}},
    "/auth/callback/{provider}": {"get": {
        "summary": "Provider callback: sets the pcloud_sso cookie and 302 to next (default /portal/)",
        "security": [], "parameters": [_PROVIDER, _q("state"), _q("code"), _q("error")],
        "responses": {**_REDIRECT, "400": {"description": "bad state, denied consent or a bad token; no session"},
                      "503": {"description": "provider unreachable"}}}},
    "/auth/session": {"get": {
        "summary": "The signed-in user and the CSRF token of the portal's SSO cookie session", "security": [],
        "responses": {"200": {"description": "user, csrf_token, expires_at"},
                      "401": {"description": "not signed in"}}}},
    "/.well-known/openid-configuration": {"get": {"summary": "OpenID Provider metadata", "security": [],
                                                  "responses": {"200": {"description": "discovery document"}}}},
    "/auth/jwks.json": {"get": {"summary": "Public signing keys (current and previous)", "security": [],
                                "responses": {"200": {"description": "JWK set"}}}},
    "/auth/authorize": {"get": {
        "summary": "Authorization code flow for registered sibling apps (PKCE S256; required for public clients)",
        "security": [],
        "parameters": [_q("client_id", True), _q("redirect_uri", True), _q("response_type", True), _q("scope"),
                       _q("state"), _q("nonce"), _q("code_challenge"), _q("code_challenge_method"), _q("prompt")],
        "responses": {"302": {"description": "to redirect_uri with code (or error), or to /auth/login"},
                      "400": {"description": "unknown client_id or unregistered redirect_uri"}}}},
    "/auth/token": {"post": {
        "summary": "Token endpoint: authorization_code and refresh_token grants (refresh tokens rotate)",
        "security": [],
        "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
            "grant_type": {"type": "string", "enum": ["authorization_code", "refresh_token"]},
            "code": {"type": "string"}, "redirect_uri": {"type": "string"}, "code_verifier": {"type": "string"},
            "refresh_token": {"type": "string"}, "client_id": {"type": "string"},
            "client_secret": {"type": "string"}}}}}},
        "responses": {"200": {"description": "tokens", "content": {"application/json": {"schema": _TOKENS}}},
                      "400": {"description": "invalid_grant, invalid_request, unsupported_grant_type",
                              "content": {"application/json": {"schema": _OAUTH_ERROR}}},
                      "401": {"description": "invalid_client",
                              "content": {"application/json": {"schema": _OAUTH_ERROR}}}}}},
    "/auth/userinfo": {"get": {
        "summary": "Claims about the token's user (Bearer access token)",
        "responses": {"200": {"description": "sub, email, email_verified, name"},
                      "401": {"description": "missing or invalid token"}}}},
    "/auth/logout": {
        method: {"summary": "RP-initiated logout: ends the SSO session; siblings get back-channel logout",
                 "security": [],
                 "parameters": [_q("id_token_hint"), _q("client_id"), _q("post_logout_redirect_uri"), _q("state"),
                                _q("next")],
                 "responses": {"200": {"description": "signed-out page"},
                               "302": {"description": "to the registered post_logout_redirect_uri with state"},
                               "400": {"description": "post_logout_redirect_uri not registered, bad hint"}}}
        for method in ("get", "post")},
}}


def create_app(settings=None):
    from functions.sso import routes
    from runtime.tokens import TokenVerifier

    app = function_app(__name__, settings, name="sso")
    cfg = app.config["PCLOUD_SETTINGS"]
    keys = app.extensions["pcloud"].keys
    audiences = {"pcloud", *(c.client_id for c in cfg.sso_clients)}
    app.extensions["sso_verifier"] = TokenVerifier(keys.public_jwks, cfg.public_url, audiences)
    app.register_blueprint(routes.bp)
    return app
