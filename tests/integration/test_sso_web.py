"""Web sign-in through the real gateway with the Google and Facebook stand-ins (real Authlib client code)."""

from __future__ import annotations

import requests

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
