"""The files page in headless chromium against the real files API: browse, create, rename, move, delete,
restore, download, and uploads with the dedup protocol hashed by WebCrypto in a Worker."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re

import pytest
from playwright.sync_api import expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("functions.files.routes") is None,
                       reason="functions/files (issue 4) has not landed: no /files/v1 API for the page to call"),
]

BLOCK = 4 * 1024 * 1024


def content_hash(data: bytes) -> str:
    digests = b"".join(hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
    return hashlib.sha256(digests).hexdigest()


def open_files(browser_page, gateway, session, path="/portal/files"):
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}{path}")
    page.wait_for_selector("#files[data-ready=true]", state="attached")
    return page


def entry(page, name):
    return page.locator(f"#entries .entry[data-name='{name}']")


def upload(page, selector, name, data):
    """Choose a file in the page's file input; returns the upload row once it is done."""
    before = page.locator(".upload").count()
    page.set_input_files(selector, files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    expect(page.locator(".upload")).to_have_count(before + 1)
    row = page.locator(".upload").first  # the newest row is on top
    expect(row).to_have_attribute("data-name", name)
    expect(row).to_have_attribute("data-state", re.compile("^(done|error)$"), timeout=60_000)
    assert row.get_attribute("data-state") == "done", row.inner_text()
    return row


def test_upload_twice_second_sends_nothing_then_rename_move_delete_restore(browser_page, gateway, clients,
                                                                         make_portal_session):
    session = make_portal_session()
    writes = []
    browser_page.page.on("request", lambda r: writes.append(r) if r.method not in ("GET", "HEAD") else None)
    page = open_files(browser_page, gateway, session)
    assert page.locator("#breadcrumbs").inner_text().strip() == "My files"
    assert page.locator("#empty-folder").is_visible()

    page.get_by_label("New folder").fill("Holidays")
    page.get_by_role("button", name="Create").click()
    entry(page, "Holidays").wait_for()
    entry(page, "Holidays").get_by_role("link", name="Holidays").click()
    expect(page.locator("#breadcrumbs [aria-current=page]")).to_have_text("Holidays")
    assert "folder=" in page.url

    data = os.urandom(BLOCK + 123_456)  # two blocks
    first = upload(page, "#upload-files", "beach.bin", data)
    assert first.get_attribute("data-hasher") == "webcrypto"  # loopback is a secure context
    assert first.get_attribute("data-sent-bytes") == str(len(data))
    assert first.get_attribute("data-skipped-bytes") == "0"
    entry(page, "beach.bin").wait_for()
    node = clients.db.nodes.find_one({"owner": session.user_id, "name": "beach.bin"})
    assert node["content_hash"] == content_hash(data) and node["size"] == len(data)

    second = upload(page, "#upload-files", "beach.bin", data)  # the same file again: overwrites, sends nothing
    assert second.get_attribute("data-sent-bytes") == "0"
    assert second.get_attribute("data-skipped-bytes") == str(len(data))
    assert "nothing sent" in second.inner_text() and "replaced the earlier version" in second.inner_text()
    assert clients.db.nodes.count_documents({"owner": session.user_id, "name": "beach.bin"}) == 1
    browser_page.screenshot("uploaded-twice")

    with page.expect_download() as download_info:
        entry(page, "beach.bin").get_by_role("link", name="Download beach.bin").click()
    assert download_info.value.suggested_filename == "beach.bin"
    assert open(download_info.value.path(), "rb").read() == data

    entry(page, "beach.bin").get_by_role("button", name="Rename beach.bin").click()
    page.get_by_label("New name").fill("sunset.bin")
    page.locator("#name-dialog-ok").click()
    entry(page, "sunset.bin").wait_for()
    assert entry(page, "beach.bin").count() == 0

    entry(page, "sunset.bin").get_by_role("button", name="Move sunset.bin").click()
    page.locator("#move-dialog-up").click()
    expect(page.locator("#move-dialog-where")).to_have_text("My files")
    expect(page.locator("#move-dialog-folders")).to_contain_text("Holidays")
    browser_page.screenshot("move-dialog")
    page.locator("#move-dialog-ok").click()
    page.wait_for_selector("#empty-folder", state="visible")
    page.locator("#breadcrumbs").get_by_role("link", name="My files").click()
    entry(page, "sunset.bin").wait_for()

    entry(page, "sunset.bin").get_by_role("button", name="Delete sunset.bin").click()
    entry(page, "sunset.bin").wait_for(state="detached")
    page.get_by_role("link", name="Trash", exact=True).click()
    trashed = page.locator("#trash-entries .entry[data-name='sunset.bin']")
    trashed.wait_for()
    browser_page.screenshot("trash")
    trashed.get_by_role("button", name="Restore sunset.bin").click()
    trashed.wait_for(state="detached")
    assert page.locator("#empty-trash").is_visible()
    page.get_by_role("link", name="Files", exact=True).click()
    entry(page, "sunset.bin").wait_for()
    # every state-changing API call carried the session's CSRF token; block PUTs go to presigned URLs instead
    api_writes = [r for r in writes if "/blobs/v1/" not in r.url]
    assert {r.method for r in api_writes} == {"POST", "PATCH", "DELETE"}
    assert all(r.headers.get("x-csrf-token") == session.csrf for r in api_writes)
    assert all("/blobs/v1/" in r.url and r.method == "PUT" for r in writes if r not in api_writes)
    restored = clients.db.nodes.find_one({"owner": session.user_id, "name": "sunset.bin"})
    assert restored["trashed_at"] is None and restored["content_hash"] == content_hash(data)
    browser_page.screenshot("files")
    assert browser_page.problems == []


def test_same_bytes_under_another_name_send_nothing_and_errors_are_shown(browser_page, gateway, clients,
                                                                        make_portal_session):
    session = make_portal_session()
    page = open_files(browser_page, gateway, session)
    data = os.urandom(300_000)
    assert upload(page, "#upload-files", "a.txt", data).get_attribute("data-sent-bytes") == str(len(data))
    copy = upload(page, "#upload-files", "copy of a.txt", data)
    assert copy.get_attribute("data-sent-bytes") == "0"
    empty = upload(page, "#upload-files", "empty.txt", b"")
    assert empty.get_attribute("data-sent-bytes") == "0"
    node = clients.db.nodes.find_one({"owner": session.user_id, "name": "empty.txt"})
    assert node["size"] == 0 and node["content_hash"] == hashlib.sha256(b"").hexdigest()

    page.get_by_label("New folder").fill("a.txt")  # the name of a file already here
    page.get_by_role("button", name="Create").click()
    alert = page.locator("#alert")
    alert.wait_for(state="visible")
    assert "already an item with that name" in alert.inner_text()
    assert browser_page.problems == []


def test_upload_a_folder_creates_its_tree(browser_page, gateway, clients, make_portal_session, tmp_path):
    session = make_portal_session()
    album = tmp_path / "Album"
    (album / "2024").mkdir(parents=True)
    (album / "cover.txt").write_bytes(b"cover")
    (album / "2024" / "one.bin").write_bytes(os.urandom(5000))
    page = open_files(browser_page, gateway, session)
    page.set_input_files("#upload-folder", str(album))
    expect(page.locator(".upload[data-state=done]")).to_have_count(2, timeout=60_000)
    entry(page, "Album").wait_for()
    db = clients.db
    album_node = db.nodes.find_one({"owner": session.user_id, "name": "Album", "kind": "folder"})
    year = db.nodes.find_one({"owner": session.user_id, "name": "2024", "parent_id": album_node["_id"]})
    assert year["kind"] == "folder"
    assert db.nodes.find_one({"owner": session.user_id, "name": "one.bin", "parent_id": year["_id"]})["size"] == 5000
    assert db.nodes.find_one({"owner": session.user_id, "name": "cover.txt"})["parent_id"] == album_node["_id"]
    assert browser_page.problems == []


def test_upload_waits_out_rate_limiting_instead_of_failing(browser_page, gateway, clients, make_portal_session):
    """The gateway's 429 + Retry-After (a big folder upload can meet it) makes the page pause and go on."""
    session = make_portal_session()
    page = open_files(browser_page, gateway, session)
    refused = []

    def limit_first_negotiation(route):
        if not refused:
            refused.append(route.request.url)
            route.fulfill(status=429, headers={"Retry-After": "1", "Content-Type": "application/json"},
                          body='{"error": {"code": "rate_limited", "message": "slow down"}}')
        else:
            route.continue_()

    page.route("**/files/v1/uploads/batch", limit_first_negotiation)
    data = os.urandom(10_000)
    row = upload(page, "#upload-files", "patient.bin", data)
    assert refused and row.get_attribute("data-sent-bytes") == str(len(data))
    assert clients.db.nodes.find_one({"owner": session.user_id, "name": "patient.bin"})["size"] == len(data)


def _lan_address() -> str | None:
    """This machine's non-loopback IPv4 address, if it has one (no packet is sent)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_plain_http_on_a_lan_address_hashes_without_webcrypto(browser_page, env, clients, make_portal_session):
    """Over plain http on a LAN address the page is not a secure context and has no WebCrypto: the Worker's
    portable SHA-256 must give the very digests the store checks."""
    from gateway.wsgi import create_gateway
    from runtime.clients import forget
    from runtime.settings import load_settings
    from tests.conftest import LiveServer

    address = _lan_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve an insecure origin from")
    port = int(env["PCLOUD_BIND"].rsplit(":", 1)[1])
    lan = f"{address}:{port}"
    settings = load_settings({**env, "PCLOUD_BIND": lan, "PCLOUD_PUBLIC_URL": f"http://{lan}"})
    try:
        server = LiveServer(create_gateway(settings), host=address, port=port)
    except OSError as exc:
        forget(settings)
        pytest.skip(f"cannot listen on {address}:{port}: {exc}")
    try:
        session = make_portal_session()
        browser_page.sign_in_as(session, server.url)
        page = browser_page.page
        page.goto(f"{server.url}/portal/files")
        page.wait_for_selector("#files[data-ready=true]", state="attached")
        assert page.evaluate("window.isSecureContext") is False
        data = os.urandom(BLOCK + 777)
        row = upload(page, "#upload-files", "lan.bin", data)
        assert row.get_attribute("data-hasher") == "portable"
        assert row.get_attribute("data-sent-bytes") == str(len(data))
        node = clients.db.nodes.find_one({"owner": session.user_id, "name": "lan.bin"})
        assert node["content_hash"] == content_hash(data)
        assert browser_page.problems == []
    finally:
        server.stop()
        forget(settings)


def test_a_change_made_elsewhere_is_explained_and_the_list_refreshed(browser_page, gateway, clients, make_user,
                                                                     make_portal_session):
    import requests

    user = make_user()
    session = make_portal_session(user=user)
    page = open_files(browser_page, gateway, session)
    upload(page, "#upload-files", "draft.txt", b"first words")
    entry(page, "draft.txt").wait_for()
    node = clients.db.nodes.find_one({"owner": user.id, "name": "draft.txt"})
    # the phone renames it meanwhile; the page still shows the old name and revision
    r = requests.patch(f"{gateway.url}/files/v1/nodes/{node['_id']}", headers=user.headers, timeout=10,
                       json={"name": "final.txt", "base_rev": node["rev"]})
    assert r.status_code == 200, r.text
    entry(page, "draft.txt").get_by_role("button", name="Rename draft.txt").click()
    page.get_by_label("New name").fill("v2.txt")
    page.locator("#name-dialog-ok").click()
    expect(page.locator("#name-dialog-error")).to_contain_text("changed elsewhere")
    entry(page, "final.txt").wait_for()  # the list was refreshed behind the dialog
    page.locator("#name-dialog-cancel").click()
    assert clients.db.nodes.find_one({"_id": node["_id"]})["name"] == "final.txt"
    assert browser_page.problems == []


def test_uploading_unchanged_files_again_is_one_request_for_all_of_them(browser_page, gateway, clients,
                                                                        make_portal_session):
    """The page negotiates the files of one folder together (POST /files/v1/uploads/batch, commit=if_complete):
    files the server already holds are committed by that one request."""
    session = make_portal_session()
    calls = []
    browser_page.page.on("request", lambda r: calls.append(f"{r.method} {r.url.split('/', 3)[3]}")
                         if "/files/v1/uploads" in r.url else None)
    page = open_files(browser_page, gateway, session)
    files = [{"name": f"f{i}.bin", "mimeType": "application/octet-stream", "buffer": os.urandom(2000 + i)}
             for i in range(4)]
    for attempt in (1, 2):
        page.set_input_files("#upload-files", files=files)
        expect(page.locator(".upload[data-state=done]")).to_have_count(4 * attempt, timeout=60_000)
        if attempt == 1:
            assert calls.count("POST files/v1/uploads/batch") == 1 and len(calls) == 1 + 4  # + a commit each
            calls.clear()
    assert calls == ["POST files/v1/uploads/batch"]
    assert all(r.get_attribute("data-sent-bytes") == "0" for r in page.locator(".upload").all()[:4])
    names = [f["name"] for f in files]
    assert clients.db.nodes.count_documents({"owner": session.user_id, "name": {"$in": names}}) == 4
    assert browser_page.problems == []
