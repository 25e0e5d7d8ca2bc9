"""NAS "Package Setting" in the portal, round trip with the real NAS agent process, the listener and the broker."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.pairing import pairing_env_for, unique_serial, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env):
    return {**pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=8, confirm=30), "PCLOUD_PACKAGE_ACK_SECONDS": "4"}


def _pair(client, user, serial) -> str:
    sid = client.post("/pairing/v1/sessions", json={"serial": serial}, headers=user.headers).json["session_id"]
    status = "start"
    while status in ("start", "waiting"):
        answer = client.get(f"/pairing/v1/sessions/{sid}?wait=10&since={status}", headers=user.headers).json
        status = answer["status"]
    assert status == "done", answer
    return answer["device_id"]


def test_edit_a_nas_package_setting_until_the_nas_confirms(browser_page, gateway, client, clients, make_user,
                                                           make_portal_session, listener, nas_agent):
    serial = unique_serial("NAS")
    agent = nas_agent(serial, "--auto-press", "0.2")
    wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what=f"hello of {serial}")
    user = make_user(name="Ada")
    device_id = _pair(client, user, serial)
    wait_until(lambda: len(client.get(f"/devices/v1/devices/{device_id}/packages", headers=user.headers)
                           .json["items"]) == 2, what="the packages report")

    session = make_portal_session(user=user)
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/devices")
    page.get_by_role("link", name=f"Packages on NAS {serial}").click()
    page.wait_for_selector("#package-list[data-ready=true]", state="attached")
    assert page.locator("#nas-name").inner_text() == f"NAS {serial}"
    media = page.locator("#package-media-server")
    assert media.get_by_role("heading", name="Media server").is_visible()
    assert page.locator("#package-backup").is_visible()
    assert media.get_by_label("Port").input_value() == "8096"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    browser_page.screenshot("packages")

    # a value outside the declared type: the API says why, next to the field, and nothing reaches the NAS
    media.get_by_label("Port").fill("80")
    media.get_by_role("button", name="Save Media server").click()
    page.wait_for_selector("#package-media-server [data-error-for=port]:has-text('at least 1024')")
    assert media.locator(".change-state").get_attribute("data-state") == "failed"
    browser_page.screenshot("packages-invalid")

    media.get_by_label("Port").fill("9000")
    media.get_by_label("Transcoding").select_option("gpu")
    media.get_by_label("Enabled").uncheck()
    media.get_by_role("button", name="Save Media server").click()
    page.wait_for_selector("#package-media-server .change-state[data-state=applied]")
    assert "Applied" in page.locator("#package-media-server .change-state").inner_text()
    assert page.locator("#package-media-server").get_by_label("Port").input_value() == "9000"
    browser_page.screenshot("packages-applied")
    saved = json.loads((agent.state_dir / f"{serial}.packages.json").read_text())
    assert saved["values"]["media-server"] == {**saved["values"]["media-server"], "port": 9000,
                                               "transcoding": "gpu", "enabled": False}

    # the NAS goes away: the next change stays pending, then fails after PCLOUD_PACKAGE_ACK_SECONDS
    agent.proc.terminate()
    agent.proc.wait(timeout=15)
    backup = page.locator("#package-backup")
    backup.get_by_label("Hour of day (UTC)").fill("5")
    backup.get_by_role("button", name="Save Scheduled backup").click()
    page.wait_for_selector("#package-backup .change-state[data-state=pending]")
    browser_page.screenshot("packages-pending")
    page.wait_for_selector("#package-backup .change-state[data-state=failed]", timeout=30_000)
    assert "did not confirm in time" in page.locator("#package-backup .change-state").inner_text()
    assert page.locator("#package-backup").get_by_label("Hour of day (UTC)").input_value() == "3"
    assert browser_page.problems == []
