"""The devices page follows the event stream (GET /events/v1/stream): pairing status, the paired device and its
going offline and online again reach Chromium live, with the pairing long-poll blocked and no page reload or
polling."""

from __future__ import annotations

import signal

import pytest

from tests.fixtures.pairing import pairing_env_for, unique_serial, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env, fresh_vhost):
    return {**pairing_env_for(env, fresh_vhost, ack=8, confirm=30), "PCLOUD_STREAM_HEARTBEAT_SECONDS": "2"}


def test_pairing_and_device_status_arrive_over_the_event_stream(browser_page, gateway, clients, make_portal_session,
                                                                 listener, nas_agent):
    from playwright.sync_api import expect

    serial = unique_serial("LIVE")
    agent = nas_agent(serial)
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what=f"hello of {serial}")
    session = make_portal_session()
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    requests_seen = []
    page.on("request", lambda req: requests_seen.append(req.url))
    # the long-poll is what the page used before: make it fail, so only the stream can tell the page anything
    page.route("**/pairing/v1/sessions/*?wait=*", lambda route: route.abort())
    page.goto(f"{gateway.url}/portal/devices")
    page.wait_for_selector("#device-list[data-ready=true]", state="attached")
    page.wait_for_selector("body[data-live=open]", state="attached")

    page.get_by_label("Serial number").fill(serial)
    page.get_by_role("button", name="Pair", exact=True).click()
    page.wait_for_selector("#pair-status[data-status=waiting]")
    wait_until(lambda: agent.led.startswith("blinking"), what="the LED to blink")
    agent.press()
    page.wait_for_selector("#pair-status[data-status=done]")
    row = page.locator(f".device[data-serial='{serial}']")
    row.wait_for()
    assert row.locator(".badge").inner_text() == "online"
    browser_page.screenshot("paired-live")

    streams = [u for u in requests_seen if "/events/v1/stream" in u]
    assert len(streams) == 1, streams  # one stream for the whole visit, no reconnects
    assert not [u for u in requests_seen if "wait=" in u]
    device_lists = [u for u in requests_seen if u.split("?")[0].endswith("/devices/v1/devices")]
    assert 1 <= len(device_lists) <= 4  # first load, then on events (paired), not on a timer
    assert browser_page.problems == []

    # the NAS stops cleanly (it says `offline`, CONTRACT §4 and docs/device-protocol.md), then comes back (hello):
    # the badge follows both on the same stream, without a reload
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(timeout=20) == 0
    expect(row.locator(".badge")).to_have_text("offline", timeout=20_000)
    nas_agent(serial)
    expect(row.locator(".badge")).to_have_text("online", timeout=20_000)
    browser_page.screenshot("offline-online-live")
    streams = [u for u in requests_seen if "/events/v1/stream" in u]
    assert len(streams) == 1, streams
    assert not [u for u in requests_seen if "wait=" in u]
    assert browser_page.problems == []
