"""Sign-in and sign-out in the browser through the real SSO and the demo Google stand-in `make run` starts."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from functions.portal import demo
from runtime.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
needs_sso = pytest.mark.skipif(importlib.util.find_spec("functions.sso.routes") is None,
                               reason="functions/sso (issue 3) has not landed: no /auth/login to sign in through")


def test_demo_plan_only_on_loopback_without_a_real_provider():
    exports, _ = demo.plan(load_settings({}), 8910)
    assert exports["PCLOUD_DEMO_SIGNIN"] == "true"
    assert exports["PCLOUD_GOOGLE_DISCOVERY_URL"] == "http://127.0.0.1:8910/.well-known/openid-configuration"
    assert len(exports["PCLOUD_GOOGLE_CLIENT_SECRET"]) >= 24
    assert demo.plan(load_settings({}), 8910)[0]["PCLOUD_GOOGLE_CLIENT_SECRET"] != exports[
        "PCLOUD_GOOGLE_CLIENT_SECRET"]
    assert demo.plan(load_settings({"PCLOUD_BIND": "0.0.0.0:8000"}), 8910) == (
        {}, "the gateway listens beyond loopback (0.0.0.0:8000); the demo sign-in is for this computer only")
    assert demo.plan(load_settings({"PCLOUD_GOOGLE_CLIENT_ID": "x.apps.googleusercontent.com"}), 8910)[0] == {}
    assert demo.plan(load_settings({"PCLOUD_FACEBOOK_CLIENT_ID": "123"}), 8910)[0] == {}
    assert demo.plan(load_settings({}), 8910, explicitly_off=True)[0] == {}


@pytest.mark.parametrize(("extra", "expect_demo"), [
    ({}, True),
    ({"PCLOUD_BIND": "0.0.0.0:8000"}, False),
    ({"PCLOUD_GOOGLE_CLIENT_ID": "real", "PCLOUD_GOOGLE_CLIENT_SECRET": "s"}, False),
])
def test_infra_demo_script_exports_the_demo_only_when_allowed(tmp_path, extra, expect_demo):
    env = {"PATH": "/usr/bin:/bin", "PCLOUD_DATA_DIR": str(tmp_path), **extra}
    out = subprocess.run(["bash", "-c", "source infra/demo.sh && echo \"demo=${PCLOUD_DEMO_SIGNIN:-unset}\""],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert ("demo=true" in out.stdout) is expect_demo, out.stderr


@needs_sso
@pytest.mark.browser
def test_demo_sign_in_then_sign_out(browser_page, portal_gateway, demo_google, clients):
    gateway, settings = portal_gateway(**demo_google)
    page = browser_page.page
    page.goto(f"{gateway.url}/")
    assert page.url == f"{gateway.url}/portal/signin"
    button = page.get_by_role("link", name="Demo sign-in (local stand-in for Google)")
    assert "This is not Google" in page.locator("#demo-note").inner_text()
    browser_page.screenshot("signin-demo")
    button.click()

    page.wait_for_selector("input[name=email]")  # the stand-in's consent form, on its own origin
    assert page.url.startswith(f"http://127.0.0.1:{demo_google['PCLOUD_DEMO_GOOGLE_PORT']}/")
    page.fill("input[name=email]", "newcomer@example.test")
    page.fill("input[name=name]", "New Comer")
    page.click("#approve")

    page.wait_for_url(f"{gateway.url}/portal/files")
    assert page.locator(".who").inner_text() == "New Comer"
    user = clients.db.users.find_one({"email": "newcomer@example.test"})
    session = clients.db.sso_sessions.find_one({"user_id": user["_id"], "ended_at": None})
    assert page.locator('meta[name="csrf-token"]').get_attribute("content") == session["csrf"]
    cookie = next(c for c in browser_page.context.cookies() if c["name"] == "pcloud_sso")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{gateway.url}/portal/signin?signed_out=1")
    assert page.locator("#signed-out").inner_text() == "You are signed out."
    assert clients.db.sso_sessions.find_one({"_id": session["_id"]})["ended_at"] is not None
    page.goto(f"{gateway.url}/portal/files")
    assert page.url.startswith(f"{gateway.url}/portal/signin")
    browser_page.screenshot("signed-out")
    assert browser_page.problems == []
