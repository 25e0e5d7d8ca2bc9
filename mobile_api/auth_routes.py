"""The phone's sign-in exchange: a Google ID token or a Facebook access token in, PCloud tokens out.

The phone signs in with the provider's own SDK; we verify what it hands us (Google: discovery `jwks_uri`,
`iss`, `aud`, `exp`, `email_verified`; Facebook: `debug_token` for this app id, then `me`). Any refusal is a
401 and stores nothing. The refresh token it gets rotates at `POST /auth/token` with client_id `pcloud`.
"""

from __future__ import annotations

from flask import jsonify

from functions.sso.provider import OpenIDProvider
from functions.sso.providers import ProviderError, ProviderUnavailable, providers_for
from functions.sso.service import SignInRefused, SsoService
from mobile_api.schemas import FacebookExchange, GoogleExchange, MobileTokens
from runtime.app import clients, settings
from runtime.errors import BadRequest, NotFound, Unauthorized, Unavailable
from runtime.schemas import Api, body

api = Api("mobile_auth", tag="mobile", import_name=__name__)
bp = api.blueprint
_EXCHANGE = {200: MobileTokens, 400: "invalid_json, or invalid_request naming the missing field",
             401: "invalid_token: refused (any check failed, an unverified email included)",
             404: "unknown_provider: not configured here", 503: "provider_unavailable"}


def _exchange(name: str, field: str):
    token = getattr(body(), field)
    if not token.strip():
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


@api.post("/mobile/v1/auth/google", operation_id="exchangeGoogleToken",
          summary="Exchange a Google ID token from the phone for PCloud tokens", body=GoogleExchange,
          responses=_EXCHANGE, security=[])
def google_exchange():
    return _exchange("google", "id_token")


@api.post("/mobile/v1/auth/facebook", operation_id="exchangeFacebookToken",
          summary="Exchange a Facebook access token from the phone for PCloud tokens", body=FacebookExchange,
          responses=_EXCHANGE, security=[])
def facebook_exchange():
    return _exchange("facebook", "access_token")
