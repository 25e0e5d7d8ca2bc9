"""The OpenID Provider for sibling apps: code + PKCE, token errors the OAuth way, refresh rotation, logout."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import timedelta

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from functions.sso.jobs import run_maintenance
from runtime.ids import utcnow
from tests.fixtures.sso import READER, STORE, pkce_pair, query_of

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _verify(sso, token: str) -> dict:
    keys = KeySet.import_key_set(requests.get(f"{sso.url}/auth/jwks.json", timeout=10).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["kid"]
    return decoded.claims


def test_discovery_and_jwks(sso):
    meta = requests.get(f"{sso.url}/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == sso.url
    assert meta["jwks_uri"] == f"{sso.url}/auth/jwks.json"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["backchannel_logout_supported"] is True and meta["backchannel_logout_session_supported"] is True
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    assert jwks["keys"] and all(k["kid"] and k["alg"] == "RS256" and "d" not in k for k in jwks["keys"])
    paths = requests.get(f"{sso.url}/openapi.json", timeout=10).json()["paths"]
    for path in ("/auth/login/{provider}", "/auth/token", "/auth/logout", "/mobile/v1/auth/google",
                 "/mobile/v1/auth/facebook", "/.well-known/openid-configuration"):
        assert path in paths


def test_authorize_without_a_session_sends_the_browser_to_sign_in(sso):
    resp, _ = sso.authorize(sso.browser())
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith("/auth/login?next=%2Fauth%2Fauthorize%3F")
    # the chooser accepts that next (same origin), and signing in comes back to /auth/authorize
    browser = sso.browser()
    back = sso.sign_in(browser, "google", "ada@example.test", next_url=query_of(location)["next"])
    assert back.status_code == 302 and back.headers["Location"].startswith("/auth/authorize?")


def test_code_flow_userinfo_refresh_and_gateway_acceptance(sso):
    browser = sso.signed_in_browser()
    resp, verifier = sso.authorize(browser, state="xyz", nonce="n-0S6")
    assert resp.status_code == 302
    query = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(sso.redirect_uri(READER))
    assert query["state"] == "xyz" and query["iss"] == sso.url
    tokens = sso.exchange(query["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["Cache-Control"] == "no-store"
    body = tokens.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
    session = sso.session_doc(browser)
    assert session["clients"] == [READER]
    access = _verify(sso, body["access_token"])
    assert access["aud"] == READER and access["iss"] == sso.url and access["sub"] == session["user_id"]
    assert access["exp"] - access["iat"] <= 900
    id_token = _verify(sso, body["id_token"])
    assert id_token["sid"] == session["_id"] and id_token["nonce"] == "n-0S6" and id_token["aud"] == READER
    assert id_token["email"] == "ada@example.test"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    info = requests.get(f"{sso.url}/auth/userinfo", headers=headers, timeout=10).json()
    assert info == {"sub": session["user_id"], "email": "ada@example.test", "email_verified": True, "name": "Ada",
                    "role": "admin"}  # the first user ever created (PCLOUD_ADMIN_EMAILS unset)
    assert requests.get(f"{sso.url}/echo/v1/ping", headers=headers, timeout=10).json()["user_id"] == \
        session["user_id"]
    stored = sso.db.sso_refresh_tokens.find_one({})
    assert stored["_id"] == hashlib.sha256(body["refresh_token"].encode()).hexdigest()  # only the hash is kept
    refreshed = sso.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != body["refresh_token"] and _verify(sso, new["id_token"])["sid"] == session["_id"]


def test_public_client_uses_pkce_and_client_id_alone(sso):
    browser = sso.signed_in_browser()
    code, verifier = sso.code_for(browser, STORE)
    resp = sso.exchange(code, verifier, client_id=STORE, auth=None)
    assert resp.status_code == 200, resp.text
    assert _verify(sso, resp.json()["access_token"])["aud"] == STORE


def test_public_client_without_pkce_gets_an_error_redirect(sso):
    resp, _ = sso.authorize(sso.signed_in_browser(), STORE, pkce=False, state="s1")
    assert resp.status_code == 302
    query = query_of(resp.headers["Location"])
    assert query["error"] == "invalid_request" and query["state"] == "s1" and "code" not in query
    plain, _ = sso.authorize(sso.signed_in_browser(), STORE, pkce=False, code_challenge="x" * 43,
                             code_challenge_method="plain")
    assert query_of(plain.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("client_id,redirect_uri", [
    (READER, "https://evil.example/cb"),
    (READER, None),
    ("nobody", "https://evil.example/cb"),
])
def test_unregistered_redirect_uri_or_unknown_client_is_400_without_redirect(sso_shared, client_id, redirect_uri):
    sso = sso_shared
    browser = sso.signed_in_browser()
    codes = sso.db.sso_codes.count_documents({})
    params = {"client_id": client_id, "response_type": "code", "scope": "openid"}
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    resp = browser.get(f"{sso.url}/auth/authorize", params=params, allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert sso.db.sso_codes.count_documents({}) == codes


def test_replayed_code_is_invalid_grant_and_revokes_what_it_gave(sso):
    code, verifier = sso.code_for(sso.signed_in_browser())
    first = sso.exchange(code, verifier)
    assert first.status_code == 200
    replay = sso.exchange(code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refresh = sso.token({"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_wrong_pkce_verifier_is_invalid_grant_and_stores_nothing(sso):
    code, verifier = sso.code_for(sso.signed_in_browser())
    wrong, _ = pkce_pair()
    resp = sso.exchange(code, wrong)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    missing = sso.exchange(code, None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    assert sso.db.sso_refresh_tokens.count_documents({}) == 0
    assert sso.db.sso_sessions.find_one({})["clients"] == []


def test_expired_code_is_invalid_grant(sso):
    code, verifier = sso.code_for(sso.signed_in_browser())
    stored = sso.db.sso_codes.find_one({})
    assert stored["expires_at"] - stored["created_at"] <= timedelta(seconds=60)
    sso.db.sso_codes.update_one({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    resp = sso.exchange(code, verifier)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_token_endpoint_errors_the_oauth_way(sso):
    code, verifier = sso.code_for(sso.signed_in_browser())
    bad_secret = sso.exchange(code, verifier, auth=(READER, "wrong"))
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in bad_secret.headers
    unknown = sso.token({"grant_type": "refresh_token", "refresh_token": "x"}, auth=("nobody", "x"))
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    no_grant = sso.token({"code": code})
    assert no_grant.status_code == 400 and no_grant.json()["error"] == "invalid_request"
    odd_grant = sso.token({"grant_type": "password", "username": "a", "password": "b"})
    assert odd_grant.status_code == 400 and odd_grant.json()["error"] == "unsupported_grant_type"
    no_code = sso.token({"grant_type": "authorization_code"})
    assert no_code.status_code == 400 and no_code.json()["error"] == "invalid_request"
    wrong_redirect = sso.token({"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                "redirect_uri": "https://evil.example/cb"})
    assert wrong_redirect.status_code == 400 and wrong_redirect.json()["error"] == "invalid_grant"
    # none of that burned the code
    assert sso.exchange(code, verifier).status_code == 200


def test_reused_refresh_token_revokes_the_family(sso):
    code, verifier = sso.code_for(sso.signed_in_browser())
    first = sso.exchange(code, verifier).json()["refresh_token"]
    second = sso.token({"grant_type": "refresh_token", "refresh_token": first}).json()["refresh_token"]
    reuse = sso.token({"grant_type": "refresh_token", "refresh_token": first})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    newer = sso.token({"grant_type": "refresh_token", "refresh_token": second})
    assert newer.status_code == 400 and newer.json()["error"] == "invalid_grant"
    other_client = sso.token({"grant_type": "refresh_token", "refresh_token": second, "client_id": STORE}, auth=None)
    assert other_client.status_code == 400 and other_client.json()["error"] == "invalid_grant"


def test_expired_alg_none_and_hs256_access_tokens_are_refused(sso, clients, make_user):
    user = make_user()
    now = int(time.time())
    expired = clients.keys.sign({"iss": sso.url, "sub": user.id, "aud": READER, "client_id": READER, "scope": "",
                                 "jti": "j", "iat": now - 1000, "nbf": now - 1000, "exp": now - 100},
                                {"typ": "at+jwt"})
    claims = {"iss": sso.url, "sub": user.id, "aud": "pcloud", "iat": now, "nbf": now, "exp": now + 300}
    payload = _b64(json.dumps(claims).encode())
    alg_none = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."
    header = _b64(json.dumps({"alg": "HS256", "kid": clients.keys.current.kid, "typ": "JWT"}).encode())
    pem = clients.keys.current.as_pem(private=False)
    hs256 = f"{header}.{payload}.{_b64(hmac.new(pem, f'{header}.{payload}'.encode(), hashlib.sha256).digest())}"
    for token in (expired, alg_none, hs256, "not.a.jwt", user.token + "x"):
        resp = requests.get(f"{sso.url}/auth/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 401 and "invalid_token" in resp.headers["WWW-Authenticate"]
        at_gateway = requests.get(f"{sso.url}/echo/v1/echo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert at_gateway.status_code == 401
    gateway = requests.get(f"{sso.url}/echo/v1/ping", headers={"Authorization": f"Bearer {expired}"}, timeout=10)
    assert gateway.status_code == 401 and gateway.json()["error"]["code"] == "token_expired"
    assert requests.get(f"{sso.url}/auth/userinfo", timeout=10).status_code == 401
    ok = requests.get(f"{sso.url}/auth/userinfo", headers=user.headers, timeout=10)
    assert ok.status_code == 200 and ok.json()["sub"] == user.id


def test_rp_initiated_logout_ends_the_session_and_tells_siblings_by_back_channel(sso):
    browser = sso.signed_in_browser()
    code, verifier = sso.code_for(browser)
    body = sso.exchange(code, verifier).json()
    store_code, store_verifier = sso.code_for(browser, STORE)
    assert sso.exchange(store_code, store_verifier, client_id=STORE, auth=None).status_code == 200
    session = sso.session_doc(browser)
    bye = sso.settings.sso_client(READER).post_logout_redirect_uris[0]
    asked = browser.get(f"{sso.url}/auth/logout", params={"id_token_hint": body["id_token"],
                                                          "post_logout_redirect_uri": bye, "state": "st8"},
                        allow_redirects=False, timeout=10)
    assert asked.status_code == 200 and 'action="/auth/logout"' in asked.text  # GET only asks
    assert sso.db.sso_sessions.find_one({"_id": session["_id"]})["ended_at"] is None
    resp = browser.post(f"{sso.url}/auth/logout", data=_hidden_fields(asked.text), allow_redirects=False,
                        timeout=10)
    assert resp.status_code == 302 and resp.headers["Location"] == f"{bye}?state=st8"
    assert "pcloud_sso" not in browser.cookies
    assert sso.db.sso_sessions.find_one({"_id": session["_id"]})["ended_at"] is not None
    assert sso.backchannel.wait(1)
    assert len(sso.backchannel.received) == 1  # the store sibling has no back-channel URI
    delivery = sso.backchannel.received[0]
    assert delivery["content_type"] == "application/x-www-form-urlencoded"
    claims = _verify(sso, delivery["form"]["logout_token"])
    assert claims["iss"] == sso.url and claims["aud"] == READER and claims["sid"] == session["_id"]
    assert claims["sub"] == session["user_id"] and BACKCHANNEL_EVENT in claims["events"] and "nonce" not in claims
    assert claims["jti"] and claims["iat"] <= claims["exp"]
    refresh = sso.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert sso.db.outbox.count_documents({}) == 0  # nothing nobody would consume (sso.session_ended is gone)
    again, _ = sso.authorize(browser)
    assert again.headers["Location"].startswith("/auth/login")


def test_logout_with_an_unregistered_post_logout_uri_is_400_and_keeps_the_session(sso):
    browser = sso.signed_in_browser()
    resp = browser.get(f"{sso.url}/auth/logout", params={"client_id": READER,
                                                         "post_logout_redirect_uri": "https://evil.example/"},
                       allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and "Location" not in resp.headers
    no_client = browser.get(f"{sso.url}/auth/logout", params={"post_logout_redirect_uri": "https://evil.example/"},
                            allow_redirects=False, timeout=10)
    assert no_client.status_code == 400
    assert sso.session_doc(browser)["ended_at"] is None


def _hidden_fields(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def test_plain_logout_shows_a_signed_out_page(sso):
    browser = sso.signed_in_browser()
    csrf = browser.get(f"{sso.url}/auth/session", timeout=10).json()["csrf_token"]
    resp = browser.post(f"{sso.url}/auth/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
    assert resp.status_code == 200 and "signed out" in resp.text
    assert browser.get(f"{sso.url}/auth/session", timeout=10).status_code == 401


def test_logout_by_get_or_without_csrf_ends_nothing(sso):
    """No cross-site forced logout: a link or image (GET) only shows the question, a forged POST is 400."""
    browser = sso.signed_in_browser()
    page = browser.get(f"{sso.url}/auth/logout", timeout=10, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Sign out of PCloud?" in page.text
    assert browser.get(f"{sso.url}/auth/session", timeout=10).status_code == 200
    for form in ({}, {"csrf_token": "forged"}):
        refused = browser.post(f"{sso.url}/auth/logout", data=form, allow_redirects=False, timeout=10)
        assert refused.status_code == 400
        assert browser.get(f"{sso.url}/auth/session", timeout=10).status_code == 200
    fields = _hidden_fields(page.text)
    assert set(fields) == {"csrf_token"}
    assert browser.post(f"{sso.url}/auth/logout", data=fields, timeout=10).status_code == 200
    assert browser.get(f"{sso.url}/auth/session", timeout=10).status_code == 401


def test_sign_in_pages_carry_security_headers(sso):
    for path in ("/auth/login", "/auth/logout"):
        resp = requests.get(f"{sso.url}{path}", headers={"Accept": "text/html"}, timeout=10)
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
        nonce = re.search(r"style-src 'nonce-([^']+)'", csp).group(1)
        assert f'<style nonce="{nonce}">' in resp.text
        assert resp.headers["X-Content-Type-Options"] == "nosniff" and resp.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in resp.headers  # plain http here
    error = requests.get(f"{sso.url}/auth/login", params={"next": "https://evil.example/"},
                         headers={"Accept": "text/html"}, timeout=10)
    assert error.status_code == 400 and "frame-ancestors 'none'" in error.headers["Content-Security-Policy"]
    api = requests.get(f"{sso.url}/auth/jwks.json", timeout=10)
    assert api.headers["X-Content-Type-Options"] == "nosniff"


def test_session_expiry_sends_back_channel_logout_with_retries(sso, clients):
    browser = sso.signed_in_browser()
    code, verifier = sso.code_for(browser)
    body = sso.exchange(code, verifier).json()
    session = sso.session_doc(browser)
    sso.db.sso_sessions.update_one({"_id": session["_id"]}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    sso.backchannel.fail_next = 1
    first = run_maintenance(clients)
    assert first["ended"] == 1 and first["retry"] == 1 and sso.backchannel.received == []
    delivery = sso.db.sso_backchannel.find_one({})
    assert delivery["attempts"] == 1 and delivery["status"] == "pending"
    sso.db.sso_backchannel.update_one({}, {"$set": {"next_at": utcnow()}})  # its backoff has passed
    second = run_maintenance(clients)
    assert second["sent"] == 1 and second["ended"] == 0
    claims = _verify(sso, sso.backchannel.received[0]["form"]["logout_token"])
    assert claims["sid"] == session["_id"]
    assert sso.db.sso_sessions.find_one({"_id": session["_id"]})["end_reason"] == "expired"
    refresh = sso.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert run_maintenance(clients) == {"ended": 0, "sent": 0, "retry": 0, "failed": 0, "purged": 0}
    stale = sso.db.sso_refresh_tokens.update_many({}, {"$set": {"expires_at": utcnow() - timedelta(days=2)}})
    assert stale.modified_count == 1 and run_maintenance(clients)["purged"] == 1
    assert sso.db.sso_refresh_tokens.count_documents({}) == 0


USER_DATA = [("GET", "/files/v1/root", None), ("GET", "/pairing/v1/sessions/x", None),
             ("GET", "/devices/v1/devices", None), ("GET", "/mobile/v1/changes", None),
             ("POST", "/mobile/v1/devices", {"name": "p", "platform": "android"})]


def test_sibling_tokens_from_the_code_flow_reach_only_their_registered_scopes(sso):
    """Real tokens from the real flow: READER (default scopes) reaches no user data; its ID token is no
    bearer token; STORE (registered with files.read, asking for files.write too) reads but cannot write."""
    browser = sso.signed_in_browser()
    code, verifier = sso.code_for(browser)
    reader = sso.exchange(code, verifier).json()
    assert set(reader["scope"].split()) == {"openid", "email", "profile"}
    for method, path, body in USER_DATA:
        for token, status, error in ((reader["access_token"], 403, "insufficient_scope"),
                                     (reader["id_token"], 401, "invalid_token")):
            resp = requests.request(method, f"{sso.url}{path}", json=body, timeout=10,
                                    headers={"Authorization": f"Bearer {token}"})
            assert (resp.status_code, resp.json()["error"]["code"]) == (status, error), (path, resp.text)
    assert sso.db.devices.count_documents({}) == 0  # the refused POST wrote nothing
    resp, verifier = sso.authorize(browser, STORE, scope="openid files.read files.write")
    store = sso.exchange(query_of(resp.headers["Location"])["code"], verifier, client_id=STORE, auth=None).json()
    assert set(store["scope"].split()) == {"openid", "files.read"}  # files.write was not registered
    headers = {"Authorization": f"Bearer {store['access_token']}"}
    root = requests.get(f"{sso.url}/files/v1/root", headers=headers, timeout=10)
    assert root.status_code == 200
    made = requests.post(f"{sso.url}/files/v1/folders", json={"parent_id": root.json()["id"], "name": "x"},
                         headers=headers, timeout=10)
    assert made.status_code == 403 and made.json()["error"]["details"]["required"] == "files.write"
    userinfo = requests.get(f"{sso.url}/auth/userinfo", headers={"Authorization": f"Bearer {store['id_token']}"},
                            timeout=10)
    assert userinfo.status_code == 401
