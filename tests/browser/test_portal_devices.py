"""Pairing a NAS from the devices page, with the real listener, the real NAS agent process and the broker."""

from __future__ import annotations

import pytest

from tests.fixtures.pairing import broker_queue_type, pairing_env_for, unique_serial, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env, fresh_vhost):
    return pairing_env_for(env, fresh_vhost, ack=8, confirm=30)  # roomy: a loaded CI must not time out


def test_pair_a_nas_pressing_its_button_then_unpair(browser_page, gateway, clients, settings, make_portal_session,
                                                   listener, nas_agent):
    """The NAS follows CONTRACT §4 exactly: it declared its own classic durable queue before the server saw it."""
    serial = unique_serial("NAS")
    agent = nas_agent(serial, "--queue-type", "classic")
    assert broker_queue_type(settings.amqp_url, f"device.{serial}") == "classic"
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what=f"hello of {serial}")
    session = make_portal_session()
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/devices")
    page.wait_for_selector("#device-list[data-ready=true]", state="attached")
    assert page.locator("#no-devices").is_visible()

    page.get_by_label("Serial number").fill(serial)
    page.get_by_role("button", name="Pair", exact=True).click()
    status = page.locator("#pair-status")
    page.wait_for_selector("#pair-status[data-status=waiting]")
    assert "Press the button on your NAS" in status.inner_text()
    wait_until(lambda: agent.led.startswith("blinking"), what="the LED to blink")
    browser_page.screenshot("waiting-for-button")

    agent.press()
    page.wait_for_selector("#pair-status[data-status=done]")
    assert f"Paired {serial}" in status.inner_text()
    row = page.locator(f".device[data-serial='{serial}']")
    row.wait_for()
    assert row.locator(".badge").inner_text() == "online"
    browser_page.screenshot("paired")
    device = clients.db.devices.find_one({"serial": serial})
    assert device["owner"] == session.user_id

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Unpair").click()
    page.wait_for_selector("#no-devices", state="visible")
    wait_until(lambda: agent.led == "unpaired", what="the agent to hear unpaired")
    assert clients.db.devices.find_one({"serial": serial}).get("owner") is None
    assert broker_queue_type(settings.amqp_url, f"device.{serial}") == "classic"  # the server left it as it was
    assert browser_page.problems == []


def test_unknown_serial_and_offline_nas_are_explained(browser_page, gateway, clients, make_portal_session, listener,
                                                     raw_device):
    session = make_portal_session()
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/devices")
    page.get_by_label("Serial number").fill("NO-SUCH-NAS")
    page.get_by_role("button", name="Pair", exact=True).click()
    page.wait_for_selector("#pair-status[data-status=error]")
    assert "No NAS with serial NO-SUCH-NAS has ever connected" in page.locator("#pair-status").inner_text()

    quiet = raw_device()
    quiet.send("hello", model="M", firmware="1")  # said hello once, then nobody answers its queue
    wait_until(lambda: clients.db.devices.find_one({"serial": quiet.serial}), what="hello")
    page.get_by_label("Serial number").fill(quiet.serial)
    page.get_by_role("button", name="Pair", exact=True).click()
    page.wait_for_selector("#pair-status[data-status=failed]", timeout=40_000)
    assert "did not answer" in page.locator("#pair-status").inner_text()
    browser_page.screenshot("failed")
    assert browser_page.problems == []
