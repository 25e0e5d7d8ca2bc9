"""The Photos UI (apps/photos-ui) in Debian's chromium, served at /apps/photos-ui/ by the app platform and talking
only GraphQL (§7), search (§9) and actions (§8) with the SSO cookie and CSRF token: timeline, a photo with its
face box, people (rename, hide, merge) and the search box. Screenshots in tests/browser/screenshots/."""

from __future__ import annotations

import pytest

from tests.fixtures.files import FilesApi
from tests.fixtures.photos import astronaut, encode, lfw_face, no_face, same_person_set, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_gallery_people_rename_merge_search(photo_stack, make_user, make_portal_session, browser_page):
    from playwright.sync_api import expect

    stack = photo_stack
    user = make_user(name="Ann")  # before the install: init runs for the users there at activation
    stack.install(make_user(name="Admin", admin=True))
    session = make_portal_session(user=user)
    answer = stack.api("PUT", "/apps/v1/apps/face-detector/settings", user, json={"min_faces": 2})
    assert answer.status_code == 200, answer.text
    files = FilesApi(stack.url, user.token)
    camera = wait_until(lambda: next((c for c in files.call("GET", f"/nodes/{files.root()['id']}/children")
                                      .json()["items"] if c["name"] == "Camera"), None), timeout=60)
    assert camera, ("the importer's init makes /Camera", stack.diagnose(user))
    for name, image in list(same_person_set(astronaut()).items())[:3]:
        files.upload(camera["id"], f"{name}.jpg", encode(image), mtime="2024-07-01T09:00:00Z")
    files.upload(camera["id"], "coffee.jpg", encode(no_face("coffee")), mtime="2024-06-30T08:00:00Z")
    for i, image in enumerate(list(same_person_set(lfw_face(0)).values())[:2]):
        files.upload(camera["id"], f"friend-{i}.png", encode(image, "PNG"), mtime="2024-05-01T10:00:00Z")
    people = wait_until(lambda: len(p := stack.nodes(user, "faces.Person")) == 2 and p, timeout=240)
    assert people, stack.diagnose(user)

    page = browser_page.page
    browser_page.sign_in_as(session, stack.url)
    page.goto(f"{stack.url}/apps/photos-ui/")
    expect(page.locator(".thumb img")).to_have_count(6)
    expect(page.locator("h3.day")).to_have_text(["2024-07-01", "2024-06-30", "2024-05-01"])  # newest first
    all_loaded = "() => [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth)"
    page.wait_for_function(all_loaded)  # a function, not a string: the page's CSP forbids eval
    browser_page.screenshot("timeline")

    page.goto(f"{stack.url}/apps/photos-ui/#/people")
    expect(page.locator(".person")).to_have_count(2)
    biggest = page.locator(".person").first  # sorted by face count: the astronaut's three
    biggest.locator("input.name").fill("Eileen Collins")
    biggest.locator("button.rename").click()
    expect(page.locator(".person input.name").first).to_have_value("Eileen Collins")
    browser_page.screenshot("people-renamed")

    hits = wait_until(lambda: len(stack.search(user, "eileen")) == 4, timeout=120)
    assert hits, stack.search(user, "eileen")
    page.fill("#q", "eileen")
    page.click("#search button")
    expect(page.locator(".hits li a")).to_have_text(["Eileen Collins"])
    expect(page.locator(".grid .thumb")).to_have_count(3)
    browser_page.screenshot("search")

    page.locator(".grid .thumb").first.click()
    expect(page.locator(".frame .face")).to_have_count(1)
    expect(page.locator(".frame .face span")).to_have_text("Eileen Collins")
    box = page.locator(".frame .face").bounding_box()
    assert box and box["width"] > 20 and box["height"] > 20
    browser_page.screenshot("photo-with-face")

    page.goto(f"{stack.url}/apps/photos-ui/#/people")
    expect(page.locator(".person")).to_have_count(2)
    page.locator(".person input.pick").nth(0).check()
    page.locator(".person input.pick").nth(1).check()
    page.click("#merge")
    expect(page.locator(".person")).to_have_count(1)
    expect(page.locator(".person .muted")).to_have_text("5 photos")
    page.locator(".person button.hide").click()
    expect(page.locator(".person")).to_have_count(0)
    page.check("#show-hidden")
    expect(page.locator(".person.hidden-person")).to_have_count(1)
    browser_page.screenshot("people-merged-hidden")
    [person] = stack.nodes(user, "faces.Person")
    assert person["data"]["name"] == "Eileen Collins" and person["data"]["hidden"] is True
    assert browser_page.problems == []
