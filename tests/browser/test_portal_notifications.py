"""/portal/settings/notifications in headless chromium: push rules, add a webhook (secret shown once), ping it
to a local receiver that verifies the signature, see the delivery log, a refused URL's error, disable, delete;
an admin allowing a network for webhooks (and a member not seeing that section).

The receiver is on 127.0.0.1, so this module's environment carries the operator's allowance for it
(PCLOUD_WEBHOOK_ALLOW_NETS=127.0.0.1/32; 10.x stays refused) — except for `no_allowance` tests, where an admin
allows it on the page.
"""

from __future__ import annotations

import pytest

from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env, request):
    extra = {"PCLOUD_WEBHOOK_TIMEOUT_SECONDS": "5"}
    if not request.node.get_closest_marker("no_allowance"):
        extra["PCLOUD_WEBHOOK_ALLOW_NETS"] = "127.0.0.1/32"
    return {**env, **extra}


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


def test_rules_webhooks_ping_and_delivery_log(browser_page, gateway, clients, make_portal_session, receiver):
    session = make_portal_session()
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/settings/notifications")
    page.wait_for_selector("#rules-form[data-ready=true]", state="attached")
    page.wait_for_selector("#hook-list[data-ready=true]", state="attached")
    assert page.locator('.settings-nav a[aria-current="page"]').inner_text() == "Notifications"

    page.locator("#push-devices-device-online").check()
    page.locator("#rules-form").get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.getElementById('status').textContent.includes('saved')")
    assert "devices.device.online" in clients.db.notify_rules.find_one({"_id": session.user_id})["push"]

    page.get_by_label("URL").fill("http://10.0.0.1/hook")
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_function("() => document.getElementById('alert').textContent.includes('private')")
    assert clients.db.webhooks.count_documents({}) == 0

    page.get_by_label("URL").fill(receiver.url + "/hook")
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_selector("#secret-box:not([hidden])")
    receiver.secret = page.locator("#secret-value").inner_text()
    assert receiver.secret.startswith("whsec_")
    row = page.locator(".webhook[data-state=enabled]")
    row.wait_for()
    assert receiver.url in row.inner_text() and "devices.device.offline" in row.inner_text()
    browser_page.screenshot("settings-notifications")

    row.get_by_role("button", name="Ping").click()
    page.wait_for_function("() => document.getElementById('status').textContent.includes('Ping delivered')")
    assert [a.verified for a in receiver.arrivals] == [True]
    page.locator(".webhook").get_by_role("button", name="Deliveries").click()
    page.wait_for_selector(".delivery[data-state=delivered]")
    assert "notify.webhook.ping" in page.locator("#delivery-log").inner_text()

    page.locator(".webhook").get_by_role("button", name="Disable").click()
    page.wait_for_selector(".webhook[data-state=disabled]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".webhook").get_by_role("button", name="Delete").click()
    page.wait_for_selector("#no-hooks:not([hidden])")
    assert clients.db.webhooks.count_documents({}) == 0
    assert browser_page.problems == []


@pytest.mark.no_allowance
def test_an_admin_allows_a_network_for_webhooks_and_takes_it_back(browser_page, gateway, clients, make_user,
                                                                  make_portal_session, receiver):
    admin = make_portal_session(user=make_user(name="Admin", admin=True))
    browser_page.sign_in_as(admin, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/settings/notifications")
    page.wait_for_selector("#net-list[data-ready=true]", state="attached")
    page.wait_for_selector("#hook-list[data-ready=true]", state="attached")
    assert page.locator("#no-nets").is_visible() and page.locator("#net-settings").is_hidden()

    page.get_by_label("URL").fill(receiver.url + "/hook")
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_function("() => document.getElementById('alert').textContent.includes('loopback')")

    page.locator("#net-add").fill("0.0.0.0/0")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_function("() => document.getElementById('alert').textContent.includes('too broad')")
    assert (clients.db.notify_allowlist.find_one() or {}).get("networks", []) == []
    page.locator("#net-add").fill("127.0.0.1")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_selector('.network[data-network="127.0.0.1/32"]')
    assert page.locator("#net-add").input_value() == ""
    assert clients.db.notify_allowlist.find_one()["networks"] == ["127.0.0.1/32"]
    audit = clients.db.events.find_one({"type": "notify.allowlist.changed"})
    assert audit["owner"] == admin.user_id and audit["data"]["added"] == ["127.0.0.1/32"]

    page.get_by_label("URL").fill(receiver.url + "/hook")  # the same URL, allowed now
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_selector("#secret-box:not([hidden])")
    receiver.secret = page.locator("#secret-value").inner_text()
    page.locator(".webhook").get_by_role("button", name="Ping").click()
    page.wait_for_function("() => document.getElementById('status').textContent.includes('Ping delivered')")
    assert [a.verified for a in receiver.arrivals] == [True]
    browser_page.screenshot("allowed-networks")

    page.get_by_role("button", name="Remove 127.0.0.1/32").click()
    page.wait_for_selector("#no-nets:not([hidden])")
    assert clients.db.notify_allowlist.find_one()["networks"] == []
    page.locator(".webhook").get_by_role("button", name="Ping").click()
    page.wait_for_function("() => document.getElementById('status').textContent.includes('url_not_allowed')")
    assert receiver.count() == 1  # refused before anything was sent
    assert browser_page.problems == []

    member = make_portal_session(name="Mia Member")
    browser_page.context.clear_cookies()
    browser_page.sign_in_as(member, gateway.url)
    page.goto(f"{gateway.url}/portal/settings/notifications")
    page.wait_for_selector("#hook-list[data-ready=true]", state="attached")
    assert page.locator("#nets-section").count() == 0
    assert browser_page.problems == []
