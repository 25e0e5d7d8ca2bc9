"""The phone's sign-in exchange: a Google ID token or a Facebook access token in, PCloud tokens out.

The phone signs in with the provider's own SDK; we verify what it hands us (Google: discovery `jwks_uri`,
`iss`, `aud`, `exp`, `email_verified`; Facebook: `debug_token` for this app id, then `me`). Any refusal is a
401 and stores nothing. The refresh token it gets rotates at `POST /auth/token` with client_id `pcloud`.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from functions.sso.provider import OpenIDProvider
from functions.sso.providers import ProviderError, ProviderUnavailable, providers_for
from functions.sso.service import SignInRefused, SsoService
from runtime.app import clients, json_body, settings
from runtime.errors import BadRequest, NotFound, Unauthorized, Unavailable

bp = Blueprint("auth_routes", __name__)

_TOKENS = {"type": "object", "required": ["access_token", "refresh_token", "expires_in", "user"], "properties": {
    "access_token": {"type": "string"}, "refresh_token": {"type": "string"}, "expires_in": {"type": "integer"},
    "token_type": {"type": "string"},
    "user": {"type": "object", "properties": {"id": {"type": "string"}, "email": {"type": "string"},
                                              "name": {"type": "string"}}}}}


def _exchange_doc(provider: str, field: str) -> dict:
    return {"post": {
        "summary": f"Exchange a {provider.title()} {field} from the phone for PCloud tokens", "security": [],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": [field], "properties": {field: {"type": "string"}}}}}},
        "responses": {"200": {"description": "tokens", "content": {"application/json": {"schema": _TOKENS}}},
                      "400": {"description": "body is not JSON or the field is missing"},
                      "401": {"description": "token refused (any check failed, an unverified email included)"},
                      "404": {"description": "provider not configured"},
                      "503": {"description": "provider unreachable"}}}}


OPENAPI_PATHS = {
    "/mobile/v1/auth/google": _exchange_doc("google", "id_token"),
    "/mobile/v1/auth/facebook": _exchange_doc("facebook", "access_token"),
}


def _exchange(name: str, field: str):
    body = json_body()
    token = body.get(field)
    if not isinstance(token, str) or not token.strip():
        raise BadRequest(f"send {{\"{field}\": \"…\"}}", code="invalid_request", details={"field": field})
    provider = providers_for(settings()).get(name)
    if provider is None:
        raise NotFound(f"{name.title()} sign-in is not configured here", code="unknown_provider")
    c = clients()
    sso = SsoService(c.db, settings(), c.mongo)
    try:
        user = sso.sign_in(provider.verify_mobile(token.strip()))
    except ProviderUnavailable as exc:
        raise Unavailable(f"{name.title()} could not be reached: {exc}", code="provider_unavailable",
                          headers={"Retry-After": "5"}) from None
    except (ProviderError, SignInRefused) as exc:
        raise Unauthorized(str(exc), code="invalid_token") from None
    resp = jsonify(OpenIDProvider(sso, c.keys, settings()).first_party_tokens(user))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/mobile/v1/auth/google")
def google_exchange():
    return _exchange("google", "id_token")


@bp.post("/mobile/v1/auth/facebook")
def facebook_exchange():
    return _exchange("facebook", "access_token")
