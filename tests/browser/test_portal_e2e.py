"""What a newcomer does after `make run`, in a real browser against the real gateway and services:
demo sign-in through the SSO and the local Google stand-in, pair DEMO-NAS-1 pressing its button, upload a
file twice (the second sends no bytes), rename, delete, restore, sign out."""

from __future__ import annotations

import hashlib
import importlib.util
import os

import pytest
from playwright.sync_api import expect

from tests.fixtures.pairing import pairing_env_for, wait_until

NEEDED = [("SSO (issue 3)", "functions.sso.routes"), ("files (issue 4)", "functions.files.routes"),
          ("pairing (issue 5)", "functions.pairing.routes")]
MISSING = [name for name, module in NEEDED if importlib.util.find_spec(module) is None]
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason=f"not landed yet: {', '.join(MISSING)}")]
BLOCK = 4 * 1024 * 1024


@pytest.fixture
def env(env, fresh_vhost):
    return pairing_env_for(env, fresh_vhost, ack=10, confirm=60)  # roomy: a loaded CI must not time out


@pytest.mark.timeout(300)
def test_newcomer_signs_in_pairs_the_demo_nas_uploads_and_signs_out(browser_page, portal_gateway, demo_google,
                                                                    clients, listener, nas_agent):
    agent = nas_agent("DEMO-NAS-1")
    gateway, _ = portal_gateway(**demo_google)
    page = browser_page.page

    # sign in with the demo stand-in
    page.goto(f"{gateway.url}/")
    page.get_by_role("link", name="Demo sign-in (local stand-in for Google)").click()
    page.fill("input[name=email]", "newcomer@example.test")
    page.fill("input[name=name]", "New Comer")
    page.click("#approve")
    page.wait_for_url(f"{gateway.url}/portal/files")
    page.wait_for_selector("#files[data-ready=true]", state="attached")
    user = clients.db.users.find_one({"email": "newcomer@example.test"})

    # pair DEMO-NAS-1: its LED blinks, the test presses its button
    wait_until(lambda: clients.db.devices.find_one({"serial": "DEMO-NAS-1"}), what="DEMO-NAS-1 to say hello")
    page.get_by_role("link", name="Devices", exact=True).click()
    page.get_by_label("Serial number").fill("DEMO-NAS-1")
    page.get_by_role("button", name="Pair", exact=True).click()
    expect(page.locator("#pair-status")).to_have_attribute("data-status", "waiting")
    wait_until(lambda: agent.led.startswith("blinking"), what="the LED to blink")
    browser_page.screenshot("1-press-the-button")
    agent.press()
    expect(page.locator("#pair-status")).to_have_attribute("data-status", "done")
    expect(page.locator(".device[data-serial='DEMO-NAS-1'] .badge")).to_have_text("online")
    assert clients.db.devices.find_one({"serial": "DEMO-NAS-1"})["owner"] == user["_id"]
    browser_page.screenshot("2-paired")

    # upload a file twice: the second time every byte is skipped
    page.get_by_role("link", name="Files", exact=True).click()
    page.wait_for_selector("#files[data-ready=true]", state="attached")
    data = os.urandom(BLOCK + 4096)
    for attempt in (1, 2):
        page.set_input_files("#upload-files", files=[{"name": "notes.bin", "mimeType": "application/octet-stream",
                                                      "buffer": data}])
        expect(page.locator(".upload")).to_have_count(attempt)
        expect(page.locator(".upload").first).to_have_attribute("data-state", "done", timeout=60_000)
    first, second = page.locator(".upload").nth(1), page.locator(".upload").first
    assert first.get_attribute("data-sent-bytes") == str(len(data))
    assert second.get_attribute("data-sent-bytes") == "0"
    assert second.get_attribute("data-skipped-bytes") == str(len(data))
    browser_page.screenshot("3-uploaded-twice")
    digests = hashlib.sha256(data[:BLOCK]).digest() + hashlib.sha256(data[BLOCK:]).digest()
    node = clients.db.nodes.find_one({"owner": user["_id"], "name": "notes.bin"})
    assert node["content_hash"] == hashlib.sha256(digests).hexdigest()

    # rename, delete, restore
    row = page.locator("#entries .entry[data-name='notes.bin']")
    row.get_by_role("button", name="Rename notes.bin").click()
    page.get_by_label("New name").fill("ideas.bin")
    page.locator("#name-dialog-ok").click()
    renamed = page.locator("#entries .entry[data-name='ideas.bin']")
    renamed.wait_for()
    renamed.get_by_role("button", name="Delete ideas.bin").click()
    renamed.wait_for(state="detached")
    page.get_by_role("link", name="Trash", exact=True).click()
    trashed = page.locator("#trash-entries .entry[data-name='ideas.bin']")
    trashed.get_by_role("button", name="Restore ideas.bin").click()
    trashed.wait_for(state="detached")
    page.get_by_role("link", name="Files", exact=True).click()
    page.locator("#entries .entry[data-name='ideas.bin']").wait_for()
    assert clients.db.nodes.find_one({"_id": node["_id"]})["trashed_at"] is None
    browser_page.screenshot("4-restored")

    # sign out: the session ends and the pages ask to sign in again
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{gateway.url}/portal/signin?signed_out=1")
    assert clients.db.sso_sessions.count_documents({"user_id": user["_id"], "ended_at": None}) == 0
    page.goto(f"{gateway.url}/portal/devices")
    assert page.url.startswith(f"{gateway.url}/portal/signin")
    browser_page.screenshot("5-signed-out")
    assert browser_page.problems == []
