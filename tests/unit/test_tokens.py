"""Strict access-token verification: what the gateway accepts and everything it must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from runtime.errors import Unauthorized
from runtime.identity import USER_SCOPES, Identity, decode_identity, encode_identity
from runtime.keys import KeyStore
from runtime.settings import load_settings
from runtime.tokens import TokenVerifier, issue_access_token, issue_invocation_token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def keys(tmp_path):
    return KeyStore(tmp_path)


@pytest.fixture
def settings(tmp_path):
    return load_settings({"PCLOUD_DATA_DIR": str(tmp_path), "PCLOUD_PUBLIC_URL": "http://127.0.0.1:8000"})


@pytest.fixture
def verifier(keys, settings):
    return TokenVerifier(keys.public_jwks, settings.public_url, {"pcloud", "reader"}, refresh_interval=0)


def test_a_fresh_token_verifies_with_its_claims(keys, settings, verifier):
    token, lifetime = issue_access_token(keys, settings, sub="user-1", aud="pcloud")
    claims = verifier.verify(token)
    assert claims["sub"] == "user-1" and claims["iss"] == settings.public_url and claims["aud"] == "pcloud"
    assert lifetime <= 900 and claims["exp"] - claims["iat"] == lifetime
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"] == keys.current.kid


def _forge(keys, claims: dict, header: dict, signer) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signer(signing_input.encode()))}"


def _claims(settings, **over):
    now = int(time.time())
    return {"iss": settings.public_url, "sub": "u", "aud": "pcloud", "client_id": "pcloud", "scope": "files.read",
            "jti": "j1", "iat": now, "nbf": now, "exp": now + 300, **over}


def _sign(keys, claims, typ="at+jwt"):
    return keys.sign(claims, {"typ": typ})


def test_alg_none_is_refused(keys, settings, verifier):
    token = _forge(keys, _claims(settings), {"alg": "none", "kid": keys.current.kid}, lambda _: b"")
    with pytest.raises(Unauthorized, match="algorithm"):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(keys, settings, verifier):
    public_pem = keys.current.as_pem(private=False)
    token = _forge(keys, _claims(settings), {"alg": "HS256", "kid": keys.current.kid},
                   lambda data: hmac.new(public_pem, data, hashlib.sha256).digest())
    with pytest.raises(Unauthorized, match="algorithm"):
        verifier.verify(token)


@pytest.mark.parametrize("over,message", [
    ({"exp": int(time.time()) - 1}, "expired"),
    ({"iss": "http://evil.example"}, "issuer"),
    ({"aud": "someone-else"}, "audience"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"sub": ""}, "subject"),
    ({"client_id": None}, "client_id"),
    ({"scope": None}, "scope"),
    ({"jti": None}, "jti"),
    ({"exp": None}, "exp"),
    ({"iat": int(time.time()) + 3600}, "future"),
    ({"scope": ["files.read"]}, "scope"),
    ({"client_id": "reader", "aud": "pcloud"}, "client_id"),
    ({"client_id": "app:x", "azp": "y", "grants": {}, "execution_id": "e", "depth": 0}, "azp"),
    ({"client_id": "app:x", "azp": "x", "execution_id": "e", "depth": 0}, "grants"),
    ({"client_id": "app:x", "azp": "x", "grants": {}, "execution_id": "e", "depth": -1}, "grants"),
    ({"nonce": "n"}, "ID or logout"),
    ({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}}, "ID or logout"),
])
def test_bad_claims_are_refused(keys, settings, verifier, over, message):
    token = _sign(keys, {k: v for k, v in _claims(settings, **over).items() if v is not None})
    with pytest.raises(Unauthorized, match=message):
        verifier.verify(token)


def test_a_token_signed_by_a_foreign_key_is_refused(tmp_path, settings, verifier):
    foreign = KeyStore(tmp_path / "elsewhere")
    with pytest.raises(Unauthorized):
        verifier.verify(_sign(foreign, _claims(settings)))


def test_tampered_payload_is_refused(keys, settings, verifier):
    token = _sign(keys, _claims(settings))
    head, _, sig = token.split(".")
    evil = b64(json.dumps(_claims(settings, sub="admin")).encode())
    with pytest.raises(Unauthorized):
        verifier.verify(f"{head}.{evil}.{sig}")


@pytest.mark.parametrize("junk", ["", "abc", "a.b", "a.b.c", "x" * 9000])
def test_malformed_tokens_are_refused(verifier, junk):
    with pytest.raises(Unauthorized):
        verifier.verify(junk)


def test_rotation_keeps_live_tokens_valid_and_new_keys_are_picked_up(keys, settings, verifier):
    old = _sign(keys, _claims(settings))
    verifier.verify(old)
    new_kid = keys.rotate()
    fresh = _sign(keys, _claims(settings))
    assert json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))["kid"] == new_kid
    assert verifier.verify(fresh)["sub"] == "u"  # unknown kid → key set refreshed
    assert verifier.verify(old)["sub"] == "u"  # previous key still published
    keys.rotate()
    with pytest.raises(Unauthorized):
        TokenVerifier(keys.public_jwks, settings.public_url, {"pcloud"}).verify(old)


def test_keys_and_secrets_are_private_files(keys, tmp_path):
    keys.sign({"sub": "x"})
    secret = keys.secret("blob-urls")
    assert len(secret) == 32 and keys.secret("blob-urls") == secret
    for path in [tmp_path / "keys" / "signing-keys.json", tmp_path / "secrets" / "blob-urls"]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for published in keys.public_jwks()["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published)  # no private parts published


@pytest.mark.parametrize("typ", [None, "JWT", "logout+jwt", "jwt", "at+jwt+x"])
def test_only_access_token_types_are_bearer_tokens(keys, settings, verifier, typ):
    """ID tokens (typ JWT) and logout tokens (logout+jwt) are signed with the same key but are refused."""
    claims = _claims(settings)
    token = keys.sign(claims, {"typ": typ}) if typ else _forge(
        keys, claims, {"alg": "RS256", "kid": keys.current.kid},
        lambda data: keys.current.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    with pytest.raises(Unauthorized, match="not an access token") as err:
        verifier.verify(token)
    assert err.value.code == "invalid_token"


def test_application_at_jwt_spelling_is_accepted(keys, settings, verifier):
    assert verifier.verify(_sign(keys, _claims(settings), typ="application/at+jwt"))["sub"] == "u"


def test_access_token_carries_rfc9068_claims_and_every_user_scope(keys, settings, verifier):
    token, _ = issue_access_token(keys, settings, sub="user-1", aud="pcloud")
    claims = verifier.verify(token)
    assert claims["client_id"] == "pcloud" and set(claims["scope"].split()) == set(USER_SCOPES)
    assert claims["jti"] and claims["iat"]
    ident = verifier.identity(token)
    assert ident.user_id == "user-1" and ident.client_id == "pcloud" and ident.scopes == USER_SCOPES
    assert ident.app is None and ident.grants is None and ident.depth == 0
    sibling, _ = issue_access_token(keys, settings, sub="user-1", aud="reader")
    assert verifier.identity(sibling).scopes == () and verifier.identity(sibling).client_id == "reader"


def test_invocation_token_becomes_an_app_identity(keys, settings, verifier):
    grants = {"actions": ["files.read"], "types": {"photos.Image": ["read", "extend"]}}
    deadline = time.time() + 120
    token = issue_invocation_token(keys, settings, user_id="user-1", app="face-detector",
                                   scopes=["graph.read", "graph.write"], grants=grants, execution_id="ex-1",
                                   depth=2, deadline=deadline)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt"
    claims = verifier.verify(token)
    assert claims["aud"] == "pcloud" and claims["client_id"] == "app:face-detector"
    assert claims["azp"] == "face-detector" and claims["exp"] == int(deadline)
    ident = verifier.identity(token)
    assert ident.app == "face-detector" and ident.grants == grants and ident.execution_id == "ex-1"
    assert ident.depth == 2 and ident.scopes == ("graph.read", "graph.write")
    assert not ident.has_scope("files.write") and not ident.has_scope("admin")


def test_invocation_token_lives_at_most_fifteen_minutes_and_never_carries_admin(keys, settings, verifier):
    far = issue_invocation_token(keys, settings, user_id="u", app="a1", scopes=[], grants={}, execution_id="e",
                                 depth=0, deadline=time.time() + 86400)
    assert verifier.verify(far)["exp"] <= time.time() + 901
    for bad in ({"scopes": ["admin"]}, {"scopes": ["nonsense"]}, {"deadline": time.time() - 1},
                {"depth": -1}, {"grants": None}):
        kwargs = {"user_id": "u", "app": "a1", "scopes": [], "grants": {}, "execution_id": "e", "depth": 0,
                  "deadline": time.time() + 60, **bad}
        with pytest.raises(ValueError):
            issue_invocation_token(keys, settings, **kwargs)


def test_identity_survives_the_signed_header_round_trip():
    ident = Identity(user_id="u", client_id="app:x", scopes=("graph.read",), app="x",
                     grants={"actions": ["files.read"], "types": {"photos.Image": ["read"]}}, execution_id="e",
                     depth=3)
    secret = b"s" * 32
    assert decode_identity(encode_identity(ident, secret), secret) == ident
    assert decode_identity(encode_identity(Identity("u"), secret), secret) == Identity("u")
    assert decode_identity(encode_identity(ident, secret), b"t" * 32) is None
