"""The public share-link page (/s/{token}) in headless Chromium, signed in as nobody: a password link is
unlocked through its form, a folder is browsed and a file downloaded; the page runs no script and breaks no CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_a_visitor_unlocks_browses_and_downloads(browser_page, files_api):
    owner = files_api()
    trip = owner.folder(owner.root()["id"], "Trip")
    sub = owner.folder(trip["id"], "Day 1")
    owner.upload(sub["id"], "beach.txt", b"sand and sea")
    owner.upload(owner.root()["id"], "elsewhere.txt", b"not shared")
    link = owner.call("POST", f"/nodes/{trip['id']}/links", json={"password": "open sesame"}).json()

    page = browser_page.page
    page.goto(link["url"])
    expect(page.locator("#unlock")).to_be_visible()
    page.fill("#password", "wrong")
    page.click("#unlock button")
    expect(page.locator("#error")).to_have_attribute("data-code", "wrong_password")
    page.fill("#password", "open sesame")
    page.click("#unlock button")

    expect(page.locator("#name")).to_have_text("Trip")
    expect(page.locator("#items a.folder")).to_have_text(["Day 1"])
    assert "elsewhere" not in page.content()
    page.click("text=Day 1")
    expect(page.locator("#items a.file")).to_have_text(["beach.txt"])
    with page.expect_download() as download_info:
        page.click("text=beach.txt")
    assert download_info.value.suggested_filename == "beach.txt"
    assert open(download_info.value.path(), "rb").read() == b"sand and sea"
    page.click("#up")
    expect(page.locator("#name")).to_have_text("Trip")
    browser_page.screenshot("share-link")
    assert browser_page.problems == []
    assert owner.call("GET", f"/links/{link['id']}").json()["downloads"] == 1
