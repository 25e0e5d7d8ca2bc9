"""Web sign-in through the real gateway with the Google and Facebook stand-ins (real Authlib client code)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import free_port
from tests.fixtures.sso import query_of


def test_login_page_lists_the_configured_providers(sso):
    resp = requests.get(f"{sso.url}/auth/login", params={"next": "/portal/files"}, timeout=10,
                        headers={"Accept": "text/html"})
    assert resp.status_code == 200
    assert "/auth/login/google?next=%2Fportal%2Ffiles" in resp.text
    assert "/auth/login/facebook?next=%2Fportal%2Ffiles" in resp.text


def test_google_sign_in_lands_on_the_portal_with_a_session(sso):
    browser = sso.browser()
    start = sso.start_login(browser, "google")
    assert start.status_code == 302
    query = query_of(start.headers["Location"])
    assert start.headers["Location"].startswith(sso.google.url)
    assert query["code_challenge_method"] == "S256" and query["state"] and query["nonce"]
    assert query["redirect_uri"] == f"{sso.url}/auth/callback/google"
    callback = sso.consent(browser, "google", start.headers["Location"], "Ada@Example.test", "Ada Lovelace")
    resp = browser.get(callback, allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and resp.headers["Location"] == "/portal/"
    set_cookie = resp.headers["Set-Cookie"]
    assert "pcloud_sso=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    session = sso.session_doc(browser)
    user = sso.db.users.find_one({"_id": session["user_id"]})
    assert user["email"] == "ada@example.test" and user["name"] == "Ada Lovelace"
    assert user["identities"][0]["provider"] == "google" and user["seq"] == 0 and user["journal_floor"] == 0
    assert session["ended_at"] is None and session["clients"] == [] and session["csrf"]
    info = browser.get(f"{sso.url}/auth/session", timeout=10).json()
    assert info["user"]["email"] == "ada@example.test" and info["csrf_token"] == session["csrf"]
    # the gateway itself accepts the cookie for a safe request
    ping = browser.get(f"{sso.url}/echo/v1/ping", timeout=10).json()
    assert ping["user_id"] == user["_id"]


def test_facebook_sign_in_links_to_the_same_user_by_verified_email(sso):
    start = sso.start_login(sso.browser(), "facebook")
    query = query_of(start.headers["Location"])
    assert start.headers["Location"].startswith(sso.facebook.authorize_url)
    assert query["client_id"] == "424242" and query["state"] and query["code_challenge_method"] == "S256"
    first = sso.browser()
    assert sso.sign_in(first, "google", "grace@example.test", "Grace").status_code == 302
    browser = sso.browser()
    resp = sso.sign_in(browser, "facebook", "Grace@example.test", "Grace H", next_url="/portal/photos")
    assert resp.status_code == 302 and resp.headers["Location"] == "/portal/photos"
    users = list(sso.db.users.find({"email": "grace@example.test"}))
    assert len(users) == 1
    assert {i["provider"] for i in users[0]["identities"]} == {"google", "facebook"}
    assert sso.session_doc(browser)["user_id"] == users[0]["_id"]
    # signing in again in the same browser replaces its session
    old = sso.session_doc(first)
    assert sso.sign_in(first, "facebook", "grace@example.test").status_code == 302
    assert sso.db.sso_sessions.find_one({"_id": old["_id"]})["end_reason"] == "replaced"
    assert sso.session_doc(first)["ended_at"] is None


def test_next_may_be_a_registered_sibling_redirect_uri(sso):
    target = sso.redirect_uri("reader")
    resp = sso.sign_in(sso.browser(), "google", "ada@example.test", next_url=target)
    assert resp.status_code == 302 and resp.headers["Location"] == target


def test_open_redirect_in_next_is_refused(sso):
    for next_url in ("https://evil.example/portal/", "//evil.example/x", "/\\evil.example",
                     "http://127.0.0.1:1/elsewhere", "javascript:alert(1)", sso.redirect_uri("reader") + "/extra"):
        resp = sso.start_login(sso.browser(), "google", next_url)
        assert resp.status_code == 400, next_url
        assert resp.json()["error"]["code"] == "invalid_next"
        page = requests.get(f"{sso.url}/auth/login", params={"next": next_url}, timeout=10)
        assert page.status_code == 400
    assert sso.db.sso_pending.count_documents({}) == 0


def _nothing_stored(sso):
    assert sso.db.users.count_documents({}) == 0
    assert sso.db.sso_sessions.count_documents({}) == 0


def test_missing_or_bad_state_is_refused_without_a_session(sso):
    browser = sso.browser()
    start = sso.start_login(browser, "google")
    callback = sso.consent(browser, "google", start.headers["Location"], "ada@example.test")
    query = query_of(callback)
    base = callback.split("?", 1)[0]
    missing = browser.get(base, params={"code": query["code"]}, allow_redirects=False, timeout=10)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_state"
    forged = browser.get(base, params={"code": query["code"], "state": "forged"}, allow_redirects=False, timeout=10)
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_state"
    assert "pcloud_sso" not in browser.cookies
    _nothing_stored(sso)
    # the real callback still works once, and a replay of it is refused
    assert browser.get(callback, allow_redirects=False, timeout=10).status_code == 302
    replay = browser.get(callback, allow_redirects=False, timeout=10)
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "invalid_state"


def test_a_callback_from_another_browser_is_refused(sso):
    """Login CSRF: the state is bound to the browser that started the sign-in."""
    attacker = sso.browser()
    start = sso.start_login(attacker, "google")
    callback = sso.consent(attacker, "google", start.headers["Location"], "mallory@example.test")
    victim = sso.browser()
    resp = victim.get(callback, allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_state"
    _nothing_stored(sso)


@pytest.mark.parametrize("provider", ["google", "facebook"])
def test_denied_consent_is_a_400_page_without_a_session(sso_shared, provider):
    sso, email = sso_shared, f"deny-{uuid.uuid4().hex[:8]}@example.test"
    sessions = sso.db.sso_sessions.count_documents({})
    browser = sso.browser()
    browser.headers["Accept"] = "text/html,application/xhtml+xml"
    resp = sso.sign_in(browser, provider, email, action="deny")
    assert resp.status_code == 400
    assert "text/html" in resp.headers["Content-Type"] and "did not work" in resp.text
    assert "pcloud_sso" not in browser.cookies
    assert sso.db.users.count_documents({"email": email}) == 0
    assert sso.db.sso_sessions.count_documents({}) == sessions


@pytest.mark.parametrize("claims,sign", [
    ({"aud": "someone-elses-client.apps.googleusercontent.test"}, "ok"),
    ({"aud": "someone-elses-client", "azp": "someone-elses-client"}, "ok"),
    ({"iss": "https://accounts.evil.example"}, "ok"),
    ({"nonce": "not-the-nonce-we-sent"}, "ok"),
    ({"exp": 1_600_000_000, "iat": 1_599_990_000}, "ok"),
    ({}, "foreign"),
    ({}, "none"),
    ({}, "hs256-public"),
], ids=["wrong-aud", "wrong-aud-and-azp", "wrong-iss", "wrong-nonce", "expired", "bad-signature", "alg-none",
        "hs256-with-public-key"])
def test_a_bad_google_id_token_is_refused(sso_shared, claims, sign):
    sso = sso_shared  # one gateway for all these cases: assert on this case's email and on count deltas
    email = f"bad-{uuid.uuid4().hex[:8]}@example.test"
    sessions = sso.db.sso_sessions.count_documents({})
    sso.google.next_id_token_claims, sso.google.next_sign = claims, sign
    browser = sso.browser()
    resp = sso.sign_in(browser, "google", email)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "sign_in_failed"
    assert "pcloud_sso" not in browser.cookies
    assert sso.db.users.count_documents({"email": email}) == 0
    assert sso.db.sso_sessions.count_documents({}) == sessions


def test_an_unverified_google_email_never_signs_in_or_links(sso):
    assert sso.sign_in(sso.browser(), "facebook", "eve@example.test").status_code == 302
    browser = sso.browser()
    resp = sso.sign_in(browser, "google", "eve@example.test", email_verified=False)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "email_unverified"
    user = sso.db.users.find_one({"email": "eve@example.test"})
    assert [i["provider"] for i in user["identities"]] == ["facebook"]
    assert sso.db.sso_sessions.count_documents({}) == 1


def test_unknown_or_unconfigured_provider_is_404(sso):
    resp = sso.start_login(sso.browser(), "myspace")
    assert resp.status_code == 404


@pytest.fixture
def google_unreachable(sso_env):
    sso_env["PCLOUD_GOOGLE_DISCOVERY_URL"] = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"


@pytest.fixture
def sso_down(google_unreachable, sso):
    return sso


def test_provider_down_at_start_gives_a_clear_error_page(sso_down):
    resp = requests.get(f"{sso_down.url}/auth/login/google", headers={"Accept": "text/html"},
                        allow_redirects=False, timeout=20)
    assert resp.status_code == 503
    assert "text/html" in resp.headers["Content-Type"] and "unavailable" in resp.text
    api = requests.get(f"{sso_down.url}/auth/login/google", allow_redirects=False, timeout=20)
    assert api.status_code == 503 and api.json()["error"]["code"] == "provider_unavailable"


def test_provider_down_at_callback_gives_a_clear_error_page(sso):
    browser = sso.browser()
    start = sso.start_login(browser, "facebook")
    callback = sso.consent(browser, "facebook", start.headers["Location"], "ada@example.test")
    sso.facebook.stop()
    resp = browser.get(callback, allow_redirects=False, timeout=20, headers={"Accept": "text/html"})
    assert resp.status_code == 503 and "could not be reached" in resp.text
    _nothing_stored(sso)
