"""Portal forms cannot submit natively before their module script ran.

A page that imports a module script can be clicked before the module ran; a form without a handler then submits
natively — a full reload with its fields in the query string (a webhook URL with its token in the address bar and
the access log). Every form therefore ships `method="post"` (a native submit could only POST: the gateway refuses a
cookie POST without the CSRF header, nothing is applied, nothing lands in a URL) and its submit buttons `disabled`
(the page script enables them once it handles the form).
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

# the pages whose forms are in the served HTML (forms a script builds get their handler as they are made)
PAGES = ["/portal/files", "/portal/devices", "/portal/settings/account", "/portal/settings/notifications",
         "/portal/settings/apps", "/portal/settings/users", "/portal/settings/executions"]
FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S)


def test_every_served_form_posts_and_ships_its_submit_buttons_disabled(client, clients, make_user,
                                                                       make_portal_session):
    admin = make_portal_session(user=make_user(name="Admin", admin=True))
    client.set_cookie("pcloud_sso", admin.cookie)
    seen = 0
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        for form in FORM.findall(page.get_data(as_text=True)):
            opening = form[:form.index(">") + 1]
            if 'action="/auth/logout"' in opening:
                continue  # the sign-out button is a real POST with its own CSRF field, no script needed
            if 'method="dialog"' in opening:
                continue  # submitting only closes its <dialog> (no request, no URL), and only a script opens one
            assert 'method="post"' in opening, (path, opening)
            buttons = re.findall(r"<button\b[^>]*>", form)
            submits = [b for b in buttons if 'type="submit"' in b]
            assert submits and all(" disabled" in b for b in submits), (path, submits)
            seen += 1
    # new folder, pair, name, push rules, add webhook, allowed networks (admins), app archive, new group, the app
    # activity filters
    assert seen == 9
    # were one submitted natively after all: a POST (values in the body, not a URL) that is refused, not applied
    native = client.post("/portal/settings/account", data={"name": "Native"})
    assert native.status_code == 401 and native.json["error"]["code"] == "csrf_required"
    client.delete_cookie("pcloud_sso")
    assert client.post("/portal/settings/notifications", data={"url": "https://x.example/?t=1"}).status_code == 405
    assert clients.db.users.find_one({"_id": admin.user_id})["name"] == "Admin"


def test_a_settings_form_stays_inert_until_its_script_ran(browser_page, gateway, make_portal_session, clients):
    """The account script is held back: Save is disabled, Enter in the field does not submit (no navigation, no
    request), nothing changes; once the script runs the same form saves through the API."""
    session = make_portal_session(name="Ada")
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    held = []
    page.route("**/static/portal/settings/account.js", lambda route: held.append(route))
    navigations, posts = [], []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.on("request", lambda req: posts.append(req.url) if req.method != "GET" else None)
    page.goto(f"{gateway.url}/portal/settings/account", wait_until="commit")  # DOMContentLoaded waits for modules
    page.wait_for_function("() => document.readyState !== 'loading'")
    assert held, "the module request was held"
    save = page.locator("#name-save")
    assert save.is_disabled()
    url_before, navigated_before = page.url, len(navigations)
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Name").press("Enter")  # implicit submission: blocked while the default button is disabled
    page.evaluate("() => document.getElementById('name-save').click()")  # a click on it does nothing either
    page.wait_for_timeout(300)  # let a (wrong) navigation start; the assertions below do not depend on timing
    assert page.url == url_before and "?" not in page.url
    assert len(navigations) == navigated_before and posts == []
    assert clients.db.users.find_one({"_id": session.user_id})["name"] == "Ada"

    held[0].continue_()  # now the module arrives and runs
    page.wait_for_function("() => !document.getElementById('name-save').disabled")
    page.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.querySelector('.topbar .who').textContent === 'Ada Lovelace'")
    assert clients.db.users.find_one({"_id": session.user_id})["name"] == "Ada Lovelace"
    assert page.url == url_before
    assert browser_page.problems == []
