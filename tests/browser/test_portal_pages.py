"""The portal's pages in headless chromium: they render on a phone screen, obey their CSP, and work."""

from __future__ import annotations

import pytest

from runtime.ids import new_id, utcnow

pytestmark = pytest.mark.browser


def test_sign_in_page_without_providers_explains_what_to_configure(browser_page, gateway):
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/files")
    assert page.url == f"{gateway.url}/portal/signin?next=/portal/files"
    assert page.get_by_role("heading", name="Sign in to PCloud").is_visible()
    assert "No sign-in provider is configured" in page.locator("#no-providers").inner_text()
    browser_page.screenshot("signin-no-provider")
    assert browser_page.problems == []


def test_signed_in_pages_render_on_a_phone_without_csp_violations(browser_page, gateway, clients,
                                                                   make_portal_session):
    session = make_portal_session(name="Grace Hopper")
    clients.db.conflicts.insert_one({"_id": new_id(), "owner": session.user_id, "type": "delete_modified",
                                     "resolution": "kept_server", "node_id": new_id(), "created_at": utcnow()})
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    for path, heading, nav in [("/portal/conflicts", "Conflicts", "Conflicts"),
                               ("/portal/notifications", "Recent notifications", "Notifications")]:
        page.goto(f"{gateway.url}{path}")
        assert page.get_by_role("heading", name=heading).is_visible()
        assert page.locator(".who").inner_text() == "Grace Hopper"
        assert page.locator('nav[aria-label="Main"] a[aria-current="page"]').inner_text() == nav
        # nothing wider than a phone: no horizontal scrolling
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        browser_page.screenshot(path.rsplit("/", 1)[-1])
        if path.endswith("conflicts"):
            assert page.locator(".conflict[data-type=delete_modified]").count() == 1
    assert browser_page.problems == []


UNLABELLED = """() => {
  const labels = (el) => (el.labels ? [...el.labels].map((l) => l.textContent).join("") : "");
  const name = (el) => (el.getAttribute("aria-label") || labels(el) || el.textContent || el.getAttribute("title")
                        || "").trim();
  const bad = [];
  for (const el of document.querySelectorAll("input:not([type=hidden]), button, a[href], select, textarea")) {
    if (!name(el)) bad.push(el.outerHTML.slice(0, 120));
  }
  if (!document.documentElement.lang) bad.push("<html> without lang");
  if (document.querySelectorAll("main").length !== 1) bad.push("not exactly one <main>");
  if (!document.querySelector("h1")) bad.push("no <h1>");
  return bad;
}"""


def test_every_control_has_an_accessible_name(browser_page, gateway, make_portal_session):
    page = browser_page.page
    for path in ["/portal/signin", "/portal/files", "/portal/trash", "/portal/devices", "/portal/conflicts",
                 "/portal/notifications"]:
        if path == "/portal/files":
            browser_page.sign_in_as(make_portal_session(), gateway.url)
        page.goto(f"{gateway.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(path), page.url
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{path} wider than a phone"
    assert browser_page.problems == []


def test_csp_blocks_injected_inline_script(browser_page, gateway, make_portal_session):
    """The policy is really enforced: a script injected into the page does not run."""
    session = make_portal_session()
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/conflicts")
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1';
                             document.body.append(s); }""")
    assert page.evaluate("window.__injected === undefined")
    assert any("Content Security Policy" in p for p in browser_page.problems)


def test_sign_out_form_posts_to_the_sso_with_the_csrf_token(browser_page, gateway, make_portal_session):
    session = make_portal_session()
    browser_page.sign_in_as(session, gateway.url)
    page = browser_page.page
    page.goto(f"{gateway.url}/portal/notifications")
    form = page.locator("form.signout")
    assert form.get_attribute("method") == "post" and form.get_attribute("action") == "/auth/logout"
    assert form.locator('input[name="csrf_token"]').get_attribute("value") == session.csrf
    assert page.get_by_role("button", name="Sign out").is_visible()
