"""HTTP for the sign-in center: provider sign-in, the SSO cookie, the OpenID Provider endpoints, logout.

Browser pages answer errors as a small HTML page when the browser asks for HTML, else the JSON error shape;
the token endpoint answers the OAuth way ({"error","error_description"}).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlencode, urlsplit

from flask import current_app, g, jsonify, redirect, render_template, request

from functions.sso.provider import OAuthError, OpenIDProvider
from functions.sso.providers import ProviderError, ProviderUnavailable, providers_for
from functions.sso.schemas import (
    AuthorizeQuery,
    CallbackQuery,
    Discovery,
    Jwks,
    LogoutQuery,
    NextQuery,
    OAuthProblem,
    RevokeRequest,
    SessionInfo,
    TokenRequest,
    Tokens,
    UserInfo,
)
from functions.sso.service import LOGIN_COOKIE, SESSION_COOKIE, SignInRefused, SsoService
from runtime.app import clients, settings
from runtime.errors import ApiError, BadRequest, NotFound, Unauthorized, error_body
from runtime.ids import iso
from runtime.schemas import FORM, Api

log = logging.getLogger(__name__)
api = Api("sso", tag="sign-in", import_name=__name__)
bp = api.blueprint
_PROVIDER = {"name": "provider", "in": "path", "required": True, "description": "the sign-in provider",
             "schema": {"type": "string", "enum": ["google", "facebook"]}}
_HTML = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _sso() -> SsoService:
    c = clients()
    return SsoService(c.db, settings(), c.mongo)


def _op() -> OpenIDProvider:
    return OpenIDProvider(_sso(), clients().keys, settings())


def csp_nonce() -> str:
    """One per response: the sign-in pages' only inline style carries it."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def page_headers(resp, cfg):
    """Every sign-in page: no script at all, only our own nonce'd style, not framable, forms post only here
    and (after logout) to the registered siblings."""
    if resp.mimetype == "text/html":
        nonce = g.get("csp_nonce")
        forms = " ".join(["'self'", *dict.fromkeys(o for c in cfg.sso_clients for o in c.origins)])
        resp.headers["Content-Security-Policy"] = "; ".join([
            "default-src 'none'", f"style-src 'nonce-{nonce}'" if nonce else "style-src 'none'",
            "img-src 'self' data:", f"form-action {forms}", "frame-ancestors 'none'", "base-uri 'none'"])
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    if cfg.is_https:
        resp.headers["Strict-Transport-Security"] = "max-age=31536000"
    return resp


def _wants_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _problem(status: int, code: str, message: str, details: dict | None = None):
    """A browser gets a readable page, an API client the JSON error shape; both with the right status."""
    if _wants_html():
        resp = current_app.make_response((render_template("error.html", status=status, code=code,
                                                          message=message), status))
    else:
        resp = jsonify(error_body(code, message, details))
        resp.status_code = status
    resp.headers.update(NO_STORE)
    return resp


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    resp = _problem(err.status, err.code, err.message, err.details)
    resp.headers.update(err.headers)
    return resp


def _cookie_args(max_age: int | None, path: str = "/") -> dict:
    return {"max_age": max_age, "path": path, "httponly": True, "samesite": "Lax", "secure": settings().is_https}


def _enabled_providers() -> dict:
    """Web sign-in providers on offer: the portal's list decides (it knows about the demo stand-in)."""
    from runtime.signin import providers as offered

    built = providers_for(settings())
    return {p.id: (p, built[p.id]) for p in offered(settings()) if p.id in built}


def _callback_uri(name: str) -> str:
    return f"{settings().public_url}/auth/callback/{name}"


# --- provider sign-in -------------------------------------------------------------------------------
@api.get("/auth/login", operation_id="signInPage", summary="Sign-in chooser page listing the configured providers",
         query=NextQuery, responses={200: _HTML, 400: "next is not same-origin nor a registered redirect URI"})
def login_page():
    next_url = _sso().safe_next(request.args.get("next"))
    offered = [p for p, _ in _enabled_providers().values()]
    resp = current_app.make_response(render_template("login.html", providers=offered,
                                                     next_query=urlencode({"next": next_url})))
    resp.headers.update(NO_STORE)
    return resp


@api.get("/auth/login/<provider>", operation_id="startSignIn",
         summary="Start signing in: 302 to the provider (state, nonce, PKCE)", query=NextQuery,
         parameters=[_PROVIDER],
         responses={302: "to the provider", 400: "next is not same-origin nor a registered redirect URI",
                    404: "unknown_provider: not configured", 503: "provider_unavailable"})
def login_start(provider: str):
    enabled = _enabled_providers()
    if provider not in enabled:
        raise NotFound(f"sign-in with {provider!r} is not offered here", code="unknown_provider")
    sso = _sso()
    next_url = sso.safe_next(request.args.get("next"))
    try:
        start = enabled[provider][1].start(_callback_uri(provider))
    except ProviderUnavailable as exc:
        log.warning("sign-in with %s unavailable: %s", provider, exc)
        return _problem(503, "provider_unavailable", f"{provider.title()} sign-in is unavailable right now; "
                                                     "try again in a moment.")
    binding = sso.begin_login(provider, start, next_url)
    resp = redirect(start.url, 302)
    resp.set_cookie(LOGIN_COOKIE, binding, **_cookie_args(600, path="/auth/callback"))
    resp.headers.update(NO_STORE)
    return resp


@api.get("/auth/callback/<provider>", operation_id="finishSignIn",
         summary="Provider callback: sets the pcloud_sso cookie and 302 to next (default /portal/)",
         query=CallbackQuery, parameters=[_PROVIDER],
         responses={302: "signed in: to next", 400: "bad state, denied consent or a bad token; no session",
                    404: "unknown_provider", 503: "provider_unavailable"})
def login_callback(provider: str):
    enabled = _enabled_providers()
    if provider not in enabled:
        raise NotFound(f"sign-in with {provider!r} is not offered here", code="unknown_provider")
    sso = _sso()
    pending = sso.take_login(provider, request.args.get("state"), request.cookies.get(LOGIN_COOKIE))
    try:
        profile = enabled[provider][1].finish(request.args.to_dict(), pending, _callback_uri(provider))
        user = sso.sign_in(profile)
    except ProviderUnavailable as exc:
        log.warning("sign-in with %s unavailable: %s", provider, exc)
        return _problem(503, "provider_unavailable", f"{provider.title()} could not be reached to finish signing in; "
                                                     "try again in a moment.")
    except ProviderError as exc:
        return _problem(400, "sign_in_failed", str(exc))
    except SignInRefused as exc:
        return _problem(400, exc.code, str(exc))
    previous = sso.live_session(cookie=request.cookies.get(SESSION_COOKIE))
    if previous is not None:  # a new sign-in replaces this browser's session (and tells its siblings)
        deliveries = sso.end_session(previous["_id"], "replaced")
        if deliveries:
            sso.deliver_backchannel(clients().keys.sign, deliveries, timeout=3.0)
    cookie, _ = sso.create_session(user["_id"], provider)
    resp = redirect(pending["next"], 302)
    resp.set_cookie(SESSION_COOKIE, cookie, **_cookie_args(settings().sso_session_seconds))
    resp.delete_cookie(LOGIN_COOKIE, path="/auth/callback")
    resp.headers.update(NO_STORE)
    return resp


@api.get("/auth/session", operation_id="getSession",
         summary="The signed-in user and the CSRF token of the portal's SSO cookie session",
         responses={200: SessionInfo, 401: "not signed in"})
def session_info():
    """The portal's own pages learn who is signed in and the CSRF token for cookie-authorised writes."""
    sso = _sso()
    session = sso.live_session(cookie=request.cookies.get(SESSION_COOKIE))
    user = sso.user(session["user_id"]) if session else None
    if user is None:
        raise Unauthorized("not signed in", code="unauthorized")
    resp = jsonify({"user": {"id": user["_id"], "email": user["email"], "name": user.get("name")},
                    "csrf_token": session["csrf"], "expires_at": iso(session["expires_at"])})
    resp.headers.update(NO_STORE)
    return resp


# --- OpenID Provider --------------------------------------------------------------------------------
@api.get("/.well-known/openid-configuration", operation_id="getOpenIdConfiguration",
         summary="OpenID Provider metadata", responses={200: Discovery})
def discovery():
    resp = jsonify(_op().discovery())
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@api.get("/auth/jwks.json", operation_id="getJwks", summary="Public signing keys (current and previous)",
         responses={200: Jwks})
def jwks():
    resp = jsonify(clients().keys.public_jwks())
    resp.headers["Cache-Control"] = "public, max-age=60"
    return resp


def _with_query(uri: str, params: dict) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode({k: v for k, v in params.items() if v is not None})}"


@api.get("/auth/authorize", operation_id="authorize",
         summary="Authorization code flow for registered sibling apps (PKCE S256; required for public clients)",
         query=AuthorizeQuery,
         responses={302: "to redirect_uri with code (or error), or to /auth/login",
                    400: "unknown client_id or unregistered redirect_uri"})
def authorize():
    op = _op()
    args = request.args
    if any(len(v) > 1 for v in args.listvalues()):
        raise BadRequest("a parameter was sent more than once", code="invalid_request")
    client = op.authorize_client(args.get("client_id"), args.get("redirect_uri"))
    state = args.get("state")
    problem = op.authorize_problem(client, args)
    if problem is not None:
        return redirect(_with_query(args["redirect_uri"], {"error": problem.error,
                                                           "error_description": problem.description,
                                                           "state": state}), 302)
    session = op.sso.live_session(cookie=request.cookies.get(SESSION_COOKIE))
    if session is None:
        if args.get("prompt") == "none":
            return redirect(_with_query(args["redirect_uri"], {"error": "login_required", "state": state}), 302)
        return redirect("/auth/login?" + urlencode({"next": request.full_path}), 302)
    code = op.issue_code(client, args, session)
    resp = redirect(_with_query(args["redirect_uri"], {"code": code, "state": state,
                                                       "iss": settings().public_url}), 302)
    resp.headers.update(NO_STORE)
    return resp


@api.post("/auth/token", operation_id="getToken",
          summary="Token endpoint: authorization_code and refresh_token grants (refresh tokens rotate)",
          body=TokenRequest, media=FORM, validate=False,
          responses={200: Tokens, 400: ("invalid_grant, invalid_request, unsupported_grant_type", OAuthProblem),
                     401: ("invalid_client", OAuthProblem)})
def token():
    try:
        if any(len(v) > 1 for v in request.form.listvalues()):
            raise OAuthError("invalid_request", "a parameter was sent more than once")
        if not request.mimetype == "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
        body = _op().token(request.form.to_dict(), request.headers.get("Authorization"))
        status = 200
    except OAuthError as err:
        body, status = err.body(), err.status
    resp = jsonify(body)
    resp.status_code = status
    resp.headers.update(NO_STORE)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="pcloud"'
    return resp


@api.post("/auth/revoke", operation_id="revokeToken",
          summary="RFC 7009 revocation: a refresh token ends its whole family (a phone's access token, its family)",
          body=RevokeRequest, media=FORM, validate=False,
          responses={200: "revoked, or the token was unknown: the answer is the same",
                     400: ("invalid_request", OAuthProblem), 401: ("invalid_client", OAuthProblem)})
def revoke():
    """RFC 7009: 200 whether or not the token was known; only bad client authentication is an error."""
    try:
        if any(len(v) > 1 for v in request.form.listvalues()):
            raise OAuthError("invalid_request", "a parameter was sent more than once")
        if not request.mimetype == "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
        _op().revoke(request.form.to_dict(), request.headers.get("Authorization"))
        body, status = {}, 200
    except OAuthError as err:
        body, status = err.body(), err.status
    resp = jsonify(body)
    resp.status_code = status
    resp.headers.update(NO_STORE)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="pcloud"'
    return resp


@api.route("/auth/userinfo", ["GET", "POST"], operation_id="getUserInfo",
           summary="Claims about the token's user (Bearer access token)", security=[{"bearer": []}],
           responses={200: UserInfo, 401: "missing or invalid token"})
def userinfo():
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="pcloud", error="invalid_token"'}
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("send Authorization: Bearer <access_token>", code="unauthorized",
                           headers={"WWW-Authenticate": 'Bearer realm="pcloud"'})
    try:
        claims = current_app.extensions["sso_verifier"].verify(raw.strip())
        info = _op().userinfo(claims)
    except Unauthorized as err:
        err.headers.update(challenge)
        raise
    except OAuthError as err:
        raise Unauthorized(err.description, code="invalid_token", headers=challenge) from None
    resp = jsonify(info)
    resp.headers.update(NO_STORE)
    return resp


@api.route("/auth/logout", ["GET", "POST"], operation_id="logout",
           summary="RP-initiated logout: ends the SSO session; siblings get back-channel logout",
           description="GET shows a confirmation page (nothing ends); its form POSTs the same parameters "
                       "with csrf_token. A POST with an id_token_hint naming the session needs no csrf_token.",
           query=LogoutQuery,
           responses={200: _HTML, 302: "to the registered post_logout_redirect_uri with state",
                      400: "post_logout_redirect_uri not registered, bad id_token_hint, csrf_required"})
def logout():
    """GET only asks (a link or an image on another site must not sign anybody out); the confirmation form
    POSTs back with the session's CSRF token. A POST carrying an id_token_hint for the session is the
    sibling asking itself (OIDC RP-Initiated Logout) and needs no CSRF token."""
    op = _op()
    params = request.values
    target, hint = op.logout_redirect(params)  # an unregistered post_logout_redirect_uri is 400 either way
    if target is None and params.get("next"):
        target = op.sso.safe_next(params.get("next"))
    session = op.sso.live_session(cookie=request.cookies.get(SESSION_COOKIE))
    if request.method == "GET":
        if session is not None:
            keep = {k: params.get(k) for k in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state",
                                               "next") if params.get(k)}
            resp = current_app.make_response(render_template("confirm_logout.html", fields=keep,
                                                             csrf=session["csrf"]))
            resp.headers.update(NO_STORE)
            return resp
        sid = None  # nothing signed in here: nothing to end, go where the sibling asked
    else:
        hinted = (hint or {}).get("sid")
        if session is not None:
            sent = request.form.get("csrf_token", "")
            if hinted != session["_id"] and not (sent and hmac.compare_digest(sent, session.get("csrf", ""))):
                raise BadRequest("signing out needs the confirmation form (its CSRF token)", code="csrf_required")
            sid = session["_id"]
        else:
            sid = hinted
    if sid:
        deliveries = op.sso.end_session(sid, "logout")
        if deliveries:  # first try right away; the periodic job retries what fails
            op.sso.deliver_backchannel(clients().keys.sign, deliveries, timeout=3.0)
    if target:
        resp = redirect(target, 302)
    else:
        resp = current_app.make_response(render_template("signed_out.html"))
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=settings().is_https)
    resp.headers.update(NO_STORE)
    return resp
