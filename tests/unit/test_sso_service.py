"""SSO logic that needs no services: where `next` may point, client authentication, authorize checks."""

from __future__ import annotations

import base64

import pytest

from functions.sso.provider import FIRST_PARTY, OAuthError, OpenIDProvider
from functions.sso.service import SsoService
from runtime.errors import BadRequest
from runtime.settings import Settings, SsoClient

READER = SsoClient("reader", "s3cret", ("https://reader.example/cb",), ("https://reader.example/bye",),
                   "https://reader.example/bcl")
STORE = SsoClient("store", None, ("https://store.example/cb",))
SETTINGS = Settings(public_url="https://cloud.example", sso_clients=(READER, STORE))


@pytest.fixture
def sso():
    return SsoService(None, SETTINGS)


@pytest.fixture
def op(sso):
    return OpenIDProvider(sso, None, SETTINGS)


@pytest.mark.parametrize("value,expected", [
    (None, "/portal/"), ("", "/portal/"), ("/portal/files?x=1", "/portal/files?x=1"),
    ("https://cloud.example/portal/", "https://cloud.example/portal/"),
    ("https://reader.example/cb", "https://reader.example/cb"),
])
def test_next_accepts_same_origin_and_registered_redirect_uris(sso, value, expected):
    assert sso.safe_next(value) == expected


@pytest.mark.parametrize("value", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "http://cloud.example/portal/",
    "https://cloud.example.evil.example/", "https://reader.example/cb/../steal", "https://reader.example/",
    "javascript:alert(1)", "/portal/\r\nSet-Cookie:x", "https://cloud.example@evil.example/",
])
def test_next_refuses_open_redirects(sso, value):
    with pytest.raises(BadRequest) as err:
        sso.safe_next(value)
    assert err.value.code == "invalid_next"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_client_authentication(op):
    assert op.authenticate_client({}, _basic("reader", "s3cret")) is READER
    assert op.authenticate_client({"client_id": "reader", "client_secret": "s3cret"}, None) is READER
    assert op.authenticate_client({"client_id": "store"}, None) is STORE
    assert op.authenticate_client({"client_id": "pcloud"}, None) is FIRST_PARTY
    for form, header in [({"client_id": "reader"}, None), ({}, _basic("reader", "nope")),
                         ({"client_id": "reader", "client_secret": "nope"}, None), ({}, None),
                         ({"client_id": "ghost"}, None), ({}, "Bearer abc"), ({}, "Basic !!!"),
                         ({"client_id": "store"}, _basic("reader", "s3cret"))]:
        with pytest.raises(OAuthError) as err:
            op.authenticate_client(form, header)
        assert err.value.error == "invalid_client" and err.value.status == 401


def test_token_request_errors_before_any_lookup(op):
    for form, error in [({}, "invalid_request"), ({"grant_type": "password"}, "unsupported_grant_type"),
                        ({"grant_type": "client_credentials", "client_id": "reader"}, "unsupported_grant_type")]:
        with pytest.raises(OAuthError) as err:
            op.token(form, None)
        assert err.value.error == error and err.value.status == 400
        assert set(err.value.body()) == {"error", "error_description"}


def test_authorize_checks(op):
    with pytest.raises(BadRequest):
        op.authorize_client("reader", "https://reader.example/other")
    with pytest.raises(BadRequest):
        op.authorize_client("ghost", "https://reader.example/cb")
    assert op.authorize_client("reader", "https://reader.example/cb") is READER
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert op.authorize_problem(READER, {"response_type": "token"}).error == "unsupported_response_type"
    assert op.authorize_problem(READER, {"response_type": "code"}) is None  # confidential: PKCE optional
    assert op.authorize_problem(STORE, {"response_type": "code"}).error == "invalid_request"
    assert op.authorize_problem(STORE, {"response_type": "code", "code_challenge": challenge,
                                        "code_challenge_method": "plain"}).error == "invalid_request"
    assert op.authorize_problem(STORE, {"response_type": "code", "code_challenge": "short",
                                        "code_challenge_method": "S256"}).error == "invalid_request"
    assert op.authorize_problem(STORE, {"response_type": "code", "code_challenge": challenge,
                                        "code_challenge_method": "S256"}) is None


def test_discovery_names_our_endpoints(op):
    meta = op.discovery()
    assert meta["issuer"] == "https://cloud.example"
    assert meta["token_endpoint"] == "https://cloud.example/auth/token"
    assert meta["end_session_endpoint"] == "https://cloud.example/auth/logout"
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
