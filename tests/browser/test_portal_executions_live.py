"""The app activity page follows execution states live over the user's stream (`event: live` notices): a new
execution appears and turns dead without a reload, Retry takes it to done, and the list is read only once."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.apps import make_archive, unique_name

pytestmark = pytest.mark.browser


def test_executions_change_state_live_without_polling(browser_page, gateway, client, clients, make_user,
                                                      make_portal_session, app_server, runner):
    admin = make_user(name="Admin", admin=True)
    name = unique_name("live")
    manifest = {"name": name, "version": "1.0.0", "title": "Live", "description": "refuses, then answers",
                "namespace": name.replace("-", "")[:30], "runtime": {"url": app_server.url},
                "actions": {"echo": {"path": "/actions/echo", "timeout_s": 5,
                                     "params": {"type": "object", "properties": {"text": {"type": "string"}}}}}}
    assert client.post("/apps/v1/apps", data=make_archive(manifest),
                       headers={**admin.headers, "Content-Type": "application/gzip"}).status_code == 201
    assert client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers).status_code == 202
    runner.tick()
    app_server.behaviours["/actions/echo"] = lambda body, headers: (400, {"error": "not today"})

    browser_page.sign_in_as(make_portal_session(user=admin), gateway.url)
    page = browser_page.page
    lists = []
    page.on("request", lambda req: lists.append(req.url) if "/apps/v1/executions?" in req.url else None)
    page.goto(f"{gateway.url}/portal/settings/executions?app={name}")
    page.wait_for_selector("#execution-list[data-ready=true]", state="attached")
    page.wait_for_selector("body[data-live=open]", state="attached")
    assert page.locator(".execution").count() == 0 and not page.locator("#filter-apply").is_disabled()

    called = requests.post(f"{gateway.url}/apps/v1/actions/{name}/echo", json={"text": "hi"},
                           headers={**admin.headers, "Prefer": "respond-async"}, timeout=20).json()["execution"]
    row = page.locator(f".execution[data-execution-id='{called['id']}']")
    page.wait_for_selector(f".execution[data-execution-id='{called['id']}'][data-state=dead]")
    assert "not today" in row.inner_text() and "dead letter" in row.inner_text()

    app_server.behaviours["/actions/echo"] = lambda body, headers: (200, {"echo": body["params"]["text"]})
    row.get_by_role("button", name=f"Retry {name}.echo").click()
    page.wait_for_selector(f".execution[data-execution-id='{called['id']}'][data-state=done]")
    assert row.get_by_role("button").count() == 0 and "not today" not in row.inner_text()
    assert clients.db.executions.find_one({"_id": called["id"]})["result"] == {"echo": "hi"}
    assert len(lists) == 1, lists  # the first listing only: everything after came over the stream
    assert browser_page.problems == []
