"""The files page follows the event stream (GET /events/v1/stream): what the same user changes through the HTTP
API (a phone, the NAS) shows up in the open folder without a reload or a polling timer, a change in another folder
does not re-list it, and the page's own uploads are not disturbed by re-lists that arrive while they run."""

from __future__ import annotations

import importlib.util
import os
import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.files import FilesApi

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("functions.files.routes") is None,
                       reason="functions/files (issue 4) has not landed: no /files/v1 API for the page to call"),
]


@pytest.fixture
def env(env):
    return {**env, "PCLOUD_STREAM_HEARTBEAT_SECONDS": "2"}


def entry(page, name):
    return page.locator(f"#entries .entry[data-name='{name}']")


def names_shown(page) -> list[str]:
    return page.locator("#entries .entry").evaluate_all("(items) => items.map((li) => li.dataset.name)")


def open_live(browser_page, gateway, make_user, make_portal_session, folder_of=None):
    """Sign in, open the files page (a folder the API makes first when `folder_of` names it) with the stream
    open and nothing pending; returns (page, api, every request URL the page made, the folder shown)."""
    user = make_user()
    session = make_portal_session(user=user)
    api = FilesApi(gateway.url, user.token)
    root = api.root()
    folder = api.folder(root["id"], folder_of) if folder_of else root
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(f"{gateway.url}/portal/files" + (f"?folder={folder['id']}" if folder_of else ""))
    page.wait_for_selector("#files[data-ready=true]", state="attached")
    page.wait_for_selector("body[data-live=open]", state="attached")
    page.wait_for_selector("#files[data-sync=idle]", state="attached")
    return page, api, seen, folder, root


def listings(seen, folder_id) -> int:
    return len([u for u in seen if f"/files/v1/nodes/{folder_id}/children" in u])


def streams(seen) -> list[str]:
    return [u for u in seen if "/events/v1/stream" in u]


def test_changes_made_through_the_api_show_up_on_the_open_folder(browser_page, gateway, make_user,
                                                                 make_portal_session):
    page, api, seen, album, root = open_live(browser_page, gateway, make_user, make_portal_session, "Album")
    page.evaluate("() => { window.sameDocument = true; }")  # a reload would lose it
    first_lists = listings(seen, album["id"])

    drafts = api.folder(album["id"], "Drafts")
    entry(page, "Drafts").wait_for()
    note = api.upload(album["id"], "note.txt", b"hello from the phone")
    entry(page, "note.txt").wait_for()
    renamed = api.call("PATCH", f"/nodes/{note['id']}", json={"name": "memo.txt", "base_rev": note["rev"]})
    assert renamed.status_code == 200, renamed.text
    entry(page, "memo.txt").wait_for()
    expect(entry(page, "note.txt")).to_have_count(0)
    trashed = api.call("DELETE", f"/nodes/{drafts['id']}")
    assert trashed.status_code in (200, 204), trashed.text
    expect(entry(page, "Drafts")).to_have_count(0)
    assert names_shown(page) == ["memo.txt"]
    assert "memo.txt" in entry(page, "memo.txt").inner_text()
    browser_page.screenshot("changed-elsewhere")

    # the folder on screen renamed elsewhere: the breadcrumbs follow; then trashed: the page says so, shows its parent
    album = api.call("GET", f"/nodes/{album['id']}").json()
    moved = api.call("PATCH", f"/nodes/{album['id']}", json={"name": "Album 2026", "base_rev": album["rev"]})
    assert moved.status_code == 200, moved.text
    expect(page.locator("#breadcrumbs [aria-current=page]")).to_have_text("Album 2026")
    assert api.call("DELETE", f"/nodes/{album['id']}").status_code in (200, 204)
    expect(page.locator("#breadcrumbs [aria-current=page]")).to_have_text("My files")
    expect(page.locator("#alert")).to_contain_text("“Album 2026” was moved to the trash elsewhere")
    assert page.url == f"{gateway.url}/portal/files"
    expect(entry(page, "Album 2026")).to_have_count(0)
    page.wait_for_selector("#files[data-sync=idle]", state="attached")

    assert page.evaluate("() => window.sameDocument === true")  # no reload: the same document all along
    assert len(streams(seen)) == 1, streams(seen)  # one stream for the visit
    # on events, not on a timer: at most one re-list per change of its children (5) on top of the first load's
    assert first_lists <= 2 and listings(seen, album["id"]) <= first_lists + 5
    assert listings(seen, album["id"]) > first_lists
    assert listings(seen, root["id"]) <= 2  # the parent, once shown
    assert browser_page.problems == []


def test_a_change_in_another_folder_does_not_relist_the_one_shown(browser_page, gateway, make_user,
                                                                  make_portal_session):
    page, api, seen, album, root = open_live(browser_page, gateway, make_user, make_portal_session, "Album")
    before_events = int(page.locator("#files").get_attribute("data-events"))
    before = listings(seen, album["id"])
    other = api.folder(root["id"], "Elsewhere")  # its parent is the root: not the folder shown

    api.folder(other["id"], "Sub")
    node = api.upload(other["id"], "far.bin", os.urandom(1000))
    renamed = api.call("PATCH", f"/nodes/{node['id']}", json={"name": "farther.bin", "base_rev": node["rev"]})
    assert renamed.status_code == 200, renamed.text
    # four files.node events: wait until the page has seen the last of them and whatever they asked for is done
    page.wait_for_function(f"() => Number(document.getElementById('files').dataset.events) >= {before_events + 4}")
    page.wait_for_selector("#files[data-sync=idle]", state="attached")
    assert listings(seen, album["id"]) == before
    assert names_shown(page) == []

    # a change in the folder shown: exactly one re-list
    api.upload(album["id"], "here.bin", os.urandom(1000))
    entry(page, "here.bin").wait_for()
    page.wait_for_selector("#files[data-sync=idle]", state="attached")
    assert listings(seen, album["id"]) == before + 1
    assert len(streams(seen)) == 1, streams(seen)
    assert browser_page.problems == []


def test_the_pages_own_upload_survives_relists_that_arrive_while_it_runs(browser_page, gateway, make_user,
                                                                         make_portal_session):
    """Changes through the API in the same folder while the page uploads: one before its batch negotiation (held),
    one while its first commit is held, a name the page is uploading taken meanwhile. Every upload finishes and
    the list ends with every file once."""
    page, api, seen, root, _ = open_live(browser_page, gateway, make_user, make_portal_session)
    batches, commits = [], []
    page.route("**/files/v1/uploads/batch", lambda route: batches.append(route))

    def hold_first_commit(route):
        if commits:
            route.continue_()
        else:
            commits.append(route)

    page.route("**/files/v1/uploads/*/commit", hold_first_commit)
    mine = ["clash.bin", "p0.bin", "p1.bin", "p2.bin", "p3.bin"]
    page.set_input_files("#upload-files", files=[{"name": n, "mimeType": "application/octet-stream",
                                                  "buffer": os.urandom(3000 + i)} for i, n in enumerate(mine)])
    expect(page.locator(".upload")).to_have_count(len(mine))
    for _ in range(400):  # the route handler runs while Playwright waits
        if batches:
            break
        page.wait_for_timeout(50)
    assert batches, "the page negotiated its batch"

    # the page has hashed and indexed the folder: now the folder changes under it, and the page re-lists live
    api.upload(root["id"], "api-1.bin", os.urandom(2000))
    api.upload(root["id"], "clash.bin", b"the phone's clash.bin")
    api.folder(root["id"], "api-dir")
    for name in ("api-1.bin", "clash.bin", "api-dir"):
        entry(page, name).wait_for()
    expect(page.locator(".upload")).to_have_count(len(mine))  # the upload rows are untouched
    batches[0].continue_()

    for _ in range(400):
        if commits:
            break
        page.wait_for_timeout(50)
    assert commits, "the page committed its first file"
    by_name = {n["name"]: n for n in api.call("GET", f"/nodes/{root['id']}/children").json()["items"]}
    api1 = by_name["api-1.bin"]
    renamed = api.call("PATCH", f"/nodes/{api1['id']}", json={"name": "api-2.bin", "base_rev": api1["rev"]})
    assert renamed.status_code == 200, renamed.text
    assert api.call("DELETE", f"/nodes/{by_name['api-dir']['id']}").status_code in (200, 204)
    entry(page, "api-2.bin").wait_for()
    expect(entry(page, "api-dir")).to_have_count(0)
    commits[0].continue_()

    expect(page.locator(".upload[data-state=done]")).to_have_count(len(mine), timeout=60_000)
    assert page.locator(".upload[data-state=error]").count() == 0
    clash_row = page.locator(".upload[data-name='clash.bin']")
    assert "replaced the earlier version" in clash_row.inner_text()  # the page asked for its file there
    page.wait_for_selector("#files[data-sync=idle]", state="attached")
    expected = sorted(["api-2.bin", *mine])
    expect(page.locator("#entries .entry")).to_have_count(len(expected))
    assert sorted(names_shown(page)) == expected  # every file once
    listed = [n["name"] for n in api.call("GET", f"/nodes/{root['id']}/children").json()["items"]
              if not n.get("trashed_at")]
    assert sorted(listed) == expected
    assert len(streams(seen)) == 1, streams(seen)
    assert re.search(r"Uploaded 5 file", page.locator("#status").inner_text())
    assert browser_page.problems == []
