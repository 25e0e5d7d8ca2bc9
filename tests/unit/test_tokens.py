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

from runtime.errors import Unauthorized
from runtime.keys import KeyStore
from runtime.settings import load_settings
from runtime.tokens import TokenVerifier, issue_access_token


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
    return {"iss": settings.public_url, "sub": "u", "aud": "pcloud", "iat": now, "nbf": now, "exp": now + 300, **over}


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
])
def test_bad_claims_are_refused(keys, settings, verifier, over, message):
    token = keys.sign(_claims(settings, **over))
    with pytest.raises(Unauthorized, match=message):
        verifier.verify(token)


def test_a_token_signed_by_a_foreign_key_is_refused(tmp_path, settings, verifier):
    foreign = KeyStore(tmp_path / "elsewhere")
    with pytest.raises(Unauthorized):
        verifier.verify(foreign.sign(_claims(settings)))


def test_tampered_payload_is_refused(keys, settings, verifier):
    token = keys.sign(_claims(settings))
    head, _, sig = token.split(".")
    evil = b64(json.dumps(_claims(settings, sub="admin")).encode())
    with pytest.raises(Unauthorized):
        verifier.verify(f"{head}.{evil}.{sig}")


@pytest.mark.parametrize("junk", ["", "abc", "a.b", "a.b.c", "x" * 9000])
def test_malformed_tokens_are_refused(verifier, junk):
    with pytest.raises(Unauthorized):
        verifier.verify(junk)


def test_rotation_keeps_live_tokens_valid_and_new_keys_are_picked_up(keys, settings, verifier):
    old = keys.sign(_claims(settings))
    verifier.verify(old)
    new_kid = keys.rotate()
    fresh = keys.sign(_claims(settings))
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
