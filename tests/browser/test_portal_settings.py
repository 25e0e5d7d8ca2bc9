"""The portal's settings pages in headless chromium, against the real gateway and the real APIs behind them."""

from __future__ import annotations

import pytest
import requests

from runtime import devices, refresh
from runtime.ids import utcnow
from tests import conftest

pytestmark = pytest.mark.browser


def _phone_sign_in(clients, settings, user_id: str) -> dict:
    """What POST /mobile/v1/auth/google hands a phone: first-party tokens with a new refresh family."""
    from functions.sso.provider import OpenIDProvider
    from functions.sso.service import SsoService

    provider = OpenIDProvider(SsoService(clients.db, settings, clients.mongo), clients.keys, settings)
    return provider.first_party_tokens(clients.db.users.find_one({"_id": user_id}))


def _refresh(gateway, token: str) -> requests.Response:
    return requests.post(f"{gateway.url}/auth/token", timeout=10,
                         data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "pcloud"})


def test_account_rename_linked_providers_and_sign_out_everywhere(browser_page, gateway, clients, settings,
                                                                  make_portal_session):
    session = make_portal_session(name="Grace Hopper")
    other_browser = make_portal_session(user=conftest.TestUser(session.user_id, session.email, session.name, token=""))
    clients.db.users.update_one({"_id": session.user_id}, {"$set": {"identities": [
        {"provider": "google", "subject": "g-1"}, {"provider": "facebook", "subject": "f-1"}]}})
    phone = _phone_sign_in(clients, settings, session.user_id)
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/settings")
    assert page.url == f"{gateway.url}/portal/settings/account"
    assert page.locator('nav[aria-label="Main"] a[aria-current="page"]').inner_text() == "Settings"
    assert [t.strip() for t in page.locator(".identity .name").all_inner_texts()] == ["Google", "Facebook"]
    assert page.locator('.settings-nav a[href="/portal/settings/notifications"]').count() == 1
    assert page.locator('.settings-nav a[href="/portal/settings/users"]').count() == 0  # a member

    page.get_by_label("Name").fill("Grace B. Hopper")
    page.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.querySelector('.topbar .who').textContent === 'Grace B. Hopper'")
    assert clients.db.users.find_one({"_id": session.user_id})["name"] == "Grace B. Hopper"
    browser_page.screenshot("account")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Sign out everywhere").click()
    page.wait_for_url("**/portal/signin?signed_out=1")
    for s in (session, other_browser):
        assert clients.db.sso_sessions.find_one({"_id": s.sid})["end_reason"] == "signed_out_everywhere"
    refused = _refresh(gateway, phone["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert browser_page.problems == []


def test_sessions_page_signs_one_phone_out_and_keeps_the_rest(browser_page, gateway, clients, settings,
                                                              make_portal_session):
    session = make_portal_session()
    kept, lost = (_phone_sign_in(clients, settings, session.user_id) for _ in range(2))
    device_id = devices.insert_phone(clients.db, session.user_id, "Lost Pixel", "android", utcnow())
    lost_family = _refresh_family_of(clients, lost["refresh_token"])
    refresh.bind_device(clients.db, session.user_id, lost_family, device_id)  # as POST /mobile/v1/devices does
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/settings/sessions")
    page.wait_for_selector("#session-list[data-ready=true]", state="attached")
    page.wait_for_selector("#phone-list[data-ready=true]", state="attached")
    assert page.locator(".session[data-kind=browser][data-current=true]").count() == 1
    assert page.locator(".session[data-kind=phone]").count() == 2
    assert page.locator("#phone-list .phone .name").inner_text() == "Lost Pixel"
    browser_page.screenshot("sessions")

    row = page.locator(f".session[data-session-id='{lost_family}']")
    assert "Lost Pixel" in row.inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Sign out").click()
    row.wait_for(state="detached")
    assert _refresh(gateway, lost["refresh_token"]).status_code == 400
    assert _refresh(gateway, kept["refresh_token"]).status_code == 200
    assert page.locator(".session[data-kind=phone]").count() == 1
    assert browser_page.problems == []


def _refresh_family_of(clients, token: str) -> str:
    import hashlib

    return clients.db.sso_refresh_tokens.find_one({"_id": hashlib.sha256(token.encode()).hexdigest()})["family"]


SETTINGS_PAGES = ["/portal/settings/account", "/portal/settings/sessions", "/portal/settings/apps",
                  "/portal/settings/executions", "/portal/settings/users"]


def test_settings_pages_over_http_sign_in_first_admins_only_and_strict_headers(client, make_user,
                                                                               make_portal_session):
    """No browser: who sees which settings page, and the headers every portal page carries."""
    for path in SETTINGS_PAGES:
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"] == f"/portal/signin?next={path}"
    member = make_portal_session()
    client.set_cookie("pcloud_sso", member.cookie)
    for path in SETTINGS_PAGES:
        r = client.get(path)
        assert r.status_code == (403 if path.endswith("/users") else 200), path
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
        assert f'<meta name="csrf-token" content="{member.csrf}">' in r.get_data(as_text=True)
    assert "Only an admin" in client.get("/portal/settings/users").get_data(as_text=True)
    admin = make_portal_session(user=make_user(name="Admin", admin=True))
    client.set_cookie("pcloud_sso", admin.cookie)
    page = client.get("/portal/settings/users")
    assert page.status_code == 200 and 'href="/portal/settings/users"' in page.get_data(as_text=True)


def test_admin_changes_a_role_and_is_told_why_the_last_admin_cannot_step_down(browser_page, gateway, clients,
                                                                              make_user, make_portal_session):
    boss = make_user(name="Boss", admin=True)
    member = make_user(name="Mia Member")
    session = make_portal_session(user=boss)
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/settings/users")
    page.wait_for_selector("#user-list[data-ready=true]", state="attached")
    mia = page.locator(f".user[data-user-id='{member.id}']")
    mia.get_by_label("Role of Mia Member").select_option("admin")
    page.wait_for_selector(f".user[data-user-id='{member.id}'][data-role=admin]")
    assert clients.db.users.find_one({"_id": member.id})["role"] == "admin"

    mia.get_by_label("Role of Mia Member").select_option("member")
    page.wait_for_selector(f".user[data-user-id='{member.id}'][data-role=member]")
    page.locator(f".user[data-user-id='{boss.id}']").get_by_label("Role of Boss").select_option("member")
    page.wait_for_selector("#alert.visible")
    assert "last admin" in page.locator("#alert").inner_text()
    assert clients.db.users.find_one({"_id": boss.id})["role"] == "admin"  # the API said no; the page shows why
    page.wait_for_selector(f".user[data-user-id='{boss.id}'][data-role=admin]")
    browser_page.screenshot("users")
    assert browser_page.problems == []


def test_admin_installs_reviews_approves_sets_settings_and_retries_a_dead_letter(
        browser_page, gateway, clients, make_user, make_portal_session, app_server, runner, tmp_path):
    import requests as http

    from tests.fixtures.apps import make_archive, unique_name

    admin = make_user(name="Admin", admin=True)
    session = make_portal_session(user=admin)
    name = unique_name("echo")
    archive = tmp_path / f"{name}.tar.gz"
    archive.write_bytes(make_archive({
        "name": name, "version": "1.0.0", "title": "Echo", "description": "answers what it is told",
        "namespace": name.replace("-", "")[:30], "runtime": {"url": app_server.url},
        "settings": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "default": 3}}},
        "actions": {"echo": {"path": "/actions/echo", "timeout_s": 5, "concurrency": 2,
                             "params": {"type": "object", "properties": {"text": {"type": "string"}}}}},
        "uses": {"actions": ["files.read"]}}))
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/settings/apps")
    page.wait_for_selector("#catalog-list[data-ready=true]", state="attached")

    # a bundled app: install from the catalog, review what it asks for, reject it
    bundled = page.locator(".catalog-entry[data-name=image-importer]")
    bundled.get_by_role("button", name="Install").click()
    card = page.locator(".app-card[data-app=image-importer][data-state=pending_approval]")
    card.wait_for()
    assert "Run files.read" in card.inner_text()
    card.get_by_role("button", name="Reject").click()
    card.wait_for(state="detached")
    assert clients.db.apps.find_one({"_id": "image-importer"}) is None

    # an uploaded archive: approve it, the runner starts it, the page follows to active
    page.set_input_files("#archive-file", str(archive))
    page.get_by_role("button", name="Upload for review").click()
    card = page.locator(f".app-card[data-app='{name}']")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_selector(f".app-card[data-app='{name}'][data-state=installing]")
    runner.tick()
    page.wait_for_selector(f".app-card[data-app='{name}'][data-state=active]")
    card.get_by_label("limit").fill("0")
    card.get_by_role("button", name="Save settings").click()  # the schema's minimum is the input's: refused here
    assert card.locator("input:invalid").count() == 1
    card.get_by_label("limit").fill("7")
    card.get_by_role("button", name="Save settings").click()
    page.wait_for_function("() => document.getElementById('status').textContent.includes('saved')")
    assert clients.db.app_users.find_one({"app": name, "owner": admin.id})["settings"]["limit"] == 7
    card.get_by_role("button", name="Process my past events").click()
    card.locator(".replay").wait_for()
    from functions.apps import replay

    while replay.work_one(clients.db):  # what the events process does with a running replay
        pass
    card.locator(".replay[data-state=done]").wait_for()
    assert "past events processed" in card.locator(".replay-text").inner_text()
    browser_page.screenshot("apps")

    # a dead letter: the app refused once; fixed, the Retry button runs it again
    app_server.behaviours["/actions/echo"] = lambda body, headers: (400, {"error": "not today"})
    called = http.post(f"{gateway.url}/apps/v1/actions/{name}/echo", json={"text": "hi"}, headers=admin.headers,
                       timeout=40).json()["execution"]
    assert called["state"] == "dead"
    app_server.behaviours["/actions/echo"] = lambda body, headers: (200, {"echo": body["params"]["text"]})
    page.goto(f"{gateway.url}/portal/settings/apps")
    page.locator(f".app-card[data-app='{name}']").get_by_role("link", name="Dead letters to look at").click()
    page.wait_for_url(f"**/portal/settings/executions?app={name}&state=dead")
    row = page.locator(f".execution[data-execution-id='{called['id']}']")
    row.wait_for()
    row.get_by_role("button", name=f"Retry {name}.echo").click()
    page.wait_for_selector(f".execution[data-execution-id='{called['id']}']:not([data-state=dead])")  # live
    retried = None
    for _ in range(200):
        retried = clients.db.executions.find_one({"_id": called["id"]})
        if retried["state"] == "done":
            break
        page.wait_for_timeout(100)
    assert retried["state"] == "done" and retried["result"] == {"echo": "hi"}
    assert browser_page.problems == []
