"""The account API (/account/v1) end to end: real sign-ins (browser cookie, phone tokens, a sibling), real tokens."""

from __future__ import annotations

import requests

from tests.fixtures.sso import READER


def _phone(sso, email: str) -> dict:
    resp = requests.post(f"{sso.url}/mobile/v1/auth/google", json={"id_token": sso.google.make_id_token(email)},
                         timeout=20)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _bearer(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _csrf(sso, browser) -> dict:
    return {"X-CSRF-Token": browser.get(f"{sso.url}/auth/session", timeout=10).json()["csrf_token"]}


def _refresh(sso, token: str) -> requests.Response:
    return requests.post(f"{sso.url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                        "client_id": "pcloud"}, timeout=20)


def test_profile_lists_linked_providers_and_the_name_changes_only_with_csrf(sso):
    browser = sso.signed_in_browser("ada@example.test", "google")
    assert sso.sign_in(sso.browser(), "facebook", "ada@example.test", "Ada F").status_code == 302  # linked by email
    me = browser.get(f"{sso.url}/account/v1/me", timeout=10)
    assert me.status_code == 200, me.text
    assert [i["provider"] for i in me.json()["identities"]] == ["google", "facebook"]
    assert me.json()["email"] == "ada@example.test" and me.json()["role"] == "admin"  # the first user

    no_csrf = browser.patch(f"{sso.url}/account/v1/me", json={"name": "Ada L"}, timeout=10)
    assert no_csrf.status_code == 401 and no_csrf.json()["error"]["code"] == "csrf_required"
    bad = browser.patch(f"{sso.url}/account/v1/me", json={"name": "  "}, headers=_csrf(sso, browser), timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_name"
    ok = browser.patch(f"{sso.url}/account/v1/me", json={"name": "  Ada   Lovelace "}, headers=_csrf(sso, browser),
                       timeout=10)
    assert ok.status_code == 200 and ok.json()["name"] == "Ada Lovelace"
    assert sso.db.users.find_one({"email": "ada@example.test"})["name"] == "Ada Lovelace"


def test_a_sibling_token_does_not_reach_the_account_api(sso):
    browser = sso.signed_in_browser("ada@example.test")
    code, verifier = sso.code_for(browser, READER)
    sibling = sso.exchange(code, verifier).json()
    resp = requests.get(f"{sso.url}/account/v1/sessions", headers=_bearer(sibling), timeout=10)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope"


def test_sessions_list_browsers_and_phones_and_one_can_be_ended(sso):
    browser = sso.signed_in_browser("ada@example.test")
    phone = _phone(sso, "ada@example.test")
    device = requests.post(f"{sso.url}/mobile/v1/devices", json={"name": "Ada's Pixel", "platform": "android"},
                           headers=_bearer(phone), timeout=10).json()["device_id"]
    other = _phone(sso, "bob@example.test")

    listed = requests.get(f"{sso.url}/account/v1/sessions", headers=_bearer(phone), timeout=10).json()["items"]
    assert [(s["kind"], s["current"]) for s in listed] == [("browser", False), ("phone", True)]
    assert listed[1]["device_id"] == device and listed[1]["device_name"] == "Ada's Pixel"
    assert listed[0]["provider"] == "google"
    from_browser = browser.get(f"{sso.url}/account/v1/sessions", timeout=10).json()["items"]
    assert [s["current"] for s in from_browser] == [True, False]

    bob_family = requests.get(f"{sso.url}/account/v1/sessions", headers=_bearer(other), timeout=10).json()
    foreign = bob_family["items"][0]["id"]
    refused = browser.delete(f"{sso.url}/account/v1/sessions/{foreign}", headers=_csrf(sso, browser), timeout=10)
    assert refused.status_code == 404
    assert _refresh(sso, other["refresh_token"]).status_code == 200  # Bob's sign-in untouched

    ended = browser.delete(f"{sso.url}/account/v1/sessions/{listed[1]['id']}", headers=_csrf(sso, browser),
                           timeout=10)
    assert ended.status_code == 204
    again = _refresh(sso, phone["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert browser.delete(f"{sso.url}/account/v1/sessions/{listed[1]['id']}", headers=_csrf(sso, browser),
                          timeout=10).status_code == 404  # once


def test_sign_out_everywhere_ends_every_browser_and_phone_and_tells_siblings(sso):
    first, second = sso.signed_in_browser("ada@example.test"), sso.signed_in_browser("ada@example.test")
    code, verifier = sso.code_for(second, READER)
    sibling = sso.exchange(code, verifier).json()
    phones = [_phone(sso, "ada@example.test"), _phone(sso, "ada@example.test")]
    bob = _phone(sso, "bob@example.test")

    resp = first.post(f"{sso.url}/account/v1/sign-out-everywhere", headers=_csrf(sso, first), timeout=20)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"sessions_ended": 2, "families_revoked": 3}  # two phones, the sibling's
    for browser in (first, second):
        assert browser.get(f"{sso.url}/auth/session", timeout=10).status_code == 401
    for phone in phones:
        assert _refresh(sso, phone["refresh_token"]).json()["error"] == "invalid_grant"
    assert sso.token({"grant_type": "refresh_token", "refresh_token": sibling["refresh_token"]}).status_code == 400
    assert sso.backchannel.wait(1)  # the sibling in the second browser heard of it
    assert _refresh(sso, bob["refresh_token"]).status_code == 200
