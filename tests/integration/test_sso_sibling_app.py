"""examples/sibling_app against the real SSO: sign in with Authlib's OIDC client, userinfo, refresh, logout
by back-channel when the SSO session ends (by logout or by expiry), RP-initiated logout."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from examples.sibling_app import create_app
from functions.sso.jobs import run_maintenance
from runtime.ids import utcnow
from tests.conftest import free_port
from tests.fixtures.sso import query_of

CLIENT_ID, SECRET = "reader-example", "example-secret"


@pytest.fixture
def sibling_port(env):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env["PCLOUD_SSO_CLIENTS"] = json.dumps([{
        "client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uris": [f"{base}/callback"],
        "post_logout_redirect_uris": [f"{base}/signed-out"], "backchannel_logout_uri": f"{base}/backchannel-logout"}])
    return port


@pytest.fixture
def sibling(sibling_port, sso, live_server_factory):
    base = f"http://127.0.0.1:{sibling_port}"
    app = create_app(sso.url, CLIENT_ID, SECRET, base)
    server = live_server_factory(app, port=sibling_port)
    assert server.url == base
    return server


def _sign_in(sso, sibling, email="reader@example.test"):
    browser = sso.browser()
    chooser = browser.get(f"{sibling.url}/login", timeout=20)
    assert chooser.status_code == 200 and chooser.url.startswith(f"{sso.url}/auth/login?next=")
    assert "/auth/login/google?next=" in chooser.text
    form = browser.get(chooser.url.replace("/auth/login?", "/auth/login/google?"), timeout=20)
    assert form.status_code == 200 and form.url.startswith(sso.google.url)
    fields = {"email": email, "name": "Reader", "action": "approve", "email_verified": "true"}
    landed = browser.post(form.url.split("?")[0], data={**query_of(form.url), **fields}, timeout=20)
    assert landed.status_code == 200, landed.text
    assert landed.url == f"{sibling.url}/"
    return browser, landed.json()


def test_sibling_signs_in_calls_userinfo_refreshes_and_is_logged_out_by_back_channel(sibling, sso):
    browser, home = _sign_in(sso, sibling)
    assert home["signed_in"] is True and home["user"]["email"] == "reader@example.test"
    session = sso.session_doc(browser)
    assert home["sid"] == session["_id"] and session["clients"] == [CLIENT_ID]
    me = browser.get(f"{sibling.url}/me", timeout=20)
    assert me.status_code == 200 and me.json()["email"] == "reader@example.test"
    before = sso.db.sso_refresh_tokens.count_documents({"used_at": None})
    refreshed = browser.post(f"{sibling.url}/refresh", timeout=20)
    assert refreshed.status_code == 200 and refreshed.json()["refreshed"] is True
    assert sso.db.sso_refresh_tokens.count_documents({"used_at": {"$ne": None}}) == before
    assert browser.get(f"{sibling.url}/me", timeout=20).status_code == 200
    # the user signs out at the portal: the sibling hears it by back-channel
    csrf = browser.get(f"{sso.url}/auth/session", timeout=20).json()["csrf_token"]
    out = browser.post(f"{sso.url}/auth/logout", data={"csrf_token": csrf}, timeout=20)
    assert out.status_code == 200
    assert browser.get(f"{sibling.url}/", timeout=20).json()["signed_in"] is False
    assert sso.db.sso_backchannel.find_one({})["status"] == "done"


def test_sibling_is_logged_out_when_the_sso_session_expires(sibling, sso, clients):
    browser, _ = _sign_in(sso, sibling)
    session = sso.session_doc(browser)
    sso.db.sso_sessions.update_one({"_id": session["_id"]}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    assert run_maintenance(clients)["sent"] == 1
    assert browser.get(f"{sibling.url}/", timeout=20).json()["signed_in"] is False
    assert browser.post(f"{sibling.url}/refresh", timeout=20).status_code == 401


def test_sibling_rp_initiated_logout(sibling, sso):
    browser, _ = _sign_in(sso, sibling)
    asked = browser.get(f"{sibling.url}/logout", timeout=20)  # the sibling sends the browser to /auth/logout
    assert asked.status_code == 200 and asked.url.startswith(f"{sso.url}/auth/logout?")
    assert sso.session_doc(browser)["ended_at"] is None  # the user is asked first
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', asked.text))
    assert {"csrf_token", "id_token_hint", "post_logout_redirect_uri", "state"} <= set(fields)
    done = browser.post(f"{sso.url}/auth/logout", data=fields, timeout=20)
    assert done.status_code == 200, done.text
    assert done.url.startswith(f"{sibling.url}/signed-out?state=") and done.json()["signed_out"] is True
    assert sso.session_doc(browser) is None or sso.session_doc(browser)["ended_at"] is not None
    assert browser.get(f"{sibling.url}/", timeout=20).json()["signed_in"] is False
