"""The phone's exchange: provider token in, PCloud tokens out, through the real gateway (CONTRACT §2)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import free_port
from tests.fixtures.sso import FACEBOOK_APP_ID, GOOGLE_CLIENT_ID, GOOGLE_MOBILE_CLIENT_ID


def _exchange(sso, provider: str, body) -> requests.Response:
    kwargs = {"json": body} if not isinstance(body, str) else {"data": body,
                                                                "headers": {"Content-Type": "application/json"}}
    return requests.post(f"{sso.url}/mobile/v1/auth/{provider}", timeout=20, **kwargs)


def _refresh(sso, token: str) -> requests.Response:
    return requests.post(f"{sso.url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                        "client_id": "pcloud"}, timeout=10)


@pytest.mark.parametrize("aud", [GOOGLE_CLIENT_ID, GOOGLE_MOBILE_CLIENT_ID])
def test_google_exchange_returns_tokens_the_gateway_accepts(sso, aud):
    id_token = sso.google.make_id_token("Lin@Example.test", aud=aud, name="Lin")
    resp = _exchange(sso, "google", {"id_token": id_token})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) >= {"access_token", "refresh_token", "expires_in", "user"}
    assert body["user"]["email"] == "lin@example.test" and body["user"]["name"] == "Lin"
    assert 0 < body["expires_in"] <= 900
    ping = requests.get(f"{sso.url}/echo/v1/ping", headers={"Authorization": f"Bearer {body['access_token']}"},
                        timeout=10)
    assert ping.json()["user_id"] == body["user"]["id"]
    # the same account again: the same user, a new token family
    again = _exchange(sso, "google", {"id_token": sso.google.make_id_token("lin@example.test", aud=aud)}).json()
    assert again["user"]["id"] == body["user"]["id"]
    assert sso.db.users.count_documents({}) == 1


def test_phone_refresh_rotates_and_reuse_revokes_the_family(sso):
    body = _exchange(sso, "google", {"id_token": sso.google.make_id_token("lin@example.test")}).json()
    first = _refresh(sso, body["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != body["refresh_token"] and "id_token" not in rotated
    reuse = _refresh(sso, body["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    revoked = _refresh(sso, rotated["refresh_token"])
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


def _nothing_stored(sso):
    assert sso.db.users.count_documents({}) == 0
    assert sso.db.sso_refresh_tokens.count_documents({}) == 0


class _Counts:
    """For tests on the shared gateway: nothing new stored for this email, no new refresh token."""

    def __init__(self, sso, email: str):
        self.sso, self.email = sso, email
        self.tokens = sso.db.sso_refresh_tokens.count_documents({})

    def unchanged(self) -> None:
        assert self.sso.db.users.count_documents({"email": self.email}) == 0
        assert self.sso.db.sso_refresh_tokens.count_documents({}) == self.tokens


def _email() -> str:
    return f"bad-{uuid.uuid4().hex[:8]}@example.test"


@pytest.mark.parametrize("kwargs", [
    {"aud": "another-app.apps.googleusercontent.test"},
    {"iss": "https://accounts.evil.example"},
    {"expires_in": -600},
    {"email_verified": False},
    {"email_verified": "false"},
    {"drop": ("email",)},
    {"sign": "foreign"},
    {"sign": "none"},
    {"sign": "hs256-public"},
], ids=["wrong-aud", "wrong-iss", "expired", "unverified", "unverified-str", "no-email", "bad-signature",
        "alg-none", "hs256-with-public-key"])
def test_a_bad_google_id_token_is_401_and_stores_nothing(sso_shared, kwargs):
    email = _email()
    counts = _Counts(sso_shared, email)
    token = sso_shared.google.make_id_token(email, **kwargs)
    resp = _exchange(sso_shared, "google", {"id_token": token})
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "invalid_token"
    counts.unchanged()


def test_a_malformed_exchange_body_is_400(sso_shared):
    counts = _Counts(sso_shared, "nobody@example.test")
    for body in ({}, {"id_token": ""}, {"id_token": 5}, "not json", "[1]"):
        resp = _exchange(sso_shared, "google", body)
        assert resp.status_code == 400 and resp.json()["error"]["code"] in ("invalid_json", "invalid_request")
    counts.unchanged()


def test_garbage_id_token_is_401(sso_shared):
    counts = _Counts(sso_shared, "nobody@example.test")
    resp = _exchange(sso_shared, "google", {"id_token": "abc.def.ghi"})
    assert resp.status_code == 401
    counts.unchanged()


def test_facebook_exchange_returns_tokens(sso):
    token = sso.facebook.issue_token("Fay@example.test", "Fay")
    resp = _exchange(sso, "facebook", {"access_token": token})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"]["email"] == "fay@example.test"
    user = sso.db.users.find_one({"_id": body["user"]["id"]})
    assert user["identities"][0]["provider"] == "facebook"
    assert requests.get(f"{sso.url}/auth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"},
                        timeout=10).json()["sub"] == user["_id"]


@pytest.mark.parametrize("case", ["other-app", "invalid", "unknown", "no-email"])
def test_a_bad_facebook_token_is_401_and_stores_nothing(sso_shared, case):
    sso, email = sso_shared, _email()
    counts = _Counts(sso, email)
    token = {
        "other-app": lambda: sso.facebook.issue_token(email, app_id=str(int(FACEBOOK_APP_ID) + 1)),
        "invalid": lambda: sso.facebook.issue_token(email, valid=False),
        "unknown": lambda: "EAAnot-a-token",
        "no-email": lambda: sso.facebook.issue_token(None, "No Mail"),
    }[case]()
    resp = _exchange(sso, "facebook", {"access_token": token})
    assert resp.status_code == 401, resp.text
    counts.unchanged()


@pytest.fixture
def providers_unreachable(sso_env):
    dead = f"http://127.0.0.1:{free_port()}"
    sso_env["PCLOUD_GOOGLE_DISCOVERY_URL"] = f"{dead}/.well-known/openid-configuration"
    sso_env["PCLOUD_FACEBOOK_GRAPH_URL"] = f"{dead}/v19.0/"


def test_provider_down_is_503_not_500(providers_unreachable, sso):
    google = _exchange(sso, "google", {"id_token": sso.google.make_id_token("lin@example.test")})
    assert google.status_code == 503 and google.json()["error"]["code"] == "provider_unavailable"
    facebook = _exchange(sso, "facebook", {"access_token": sso.facebook.issue_token("fay@example.test")})
    assert facebook.status_code == 503
    _nothing_stored(sso)
