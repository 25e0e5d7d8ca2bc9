"""/portal/settings/notifications in headless chromium: push rules, add a webhook (secret shown once), ping it
to a local receiver that verifies the signature, see the delivery log, a refused URL's error, disable, delete.

The receiver is on 127.0.0.1, so this module's environment carries the admin's allowance for it
(PCLOUD_WEBHOOK_ALLOW_NETS=127.0.0.1/32); 10.x stays refused.
"""

from __future__ import annotations

import pytest

from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env):
    return {**env, "PCLOUD_WEBHOOK_ALLOW_NETS": "127.0.0.1/32", "PCLOUD_WEBHOOK_TIMEOUT_SECONDS": "5"}


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
