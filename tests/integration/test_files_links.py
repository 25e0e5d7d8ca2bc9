"""Share links end to end through the gateway (issue 19): the owner's API, the public /s/{token} page and JSON
without sign-in, passwords with rate-limited attempts, expiry, revocation, the download count, and traversal
attempts that must never reach a node outside the link."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.files import links
from runtime.ids import utcnow


@pytest.fixture
def owner(files_api):
    return files_api()


def _link(api, node_id, **body) -> dict:
    made = api.call("POST", f"/nodes/{node_id}/links", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def _tree(api):
    root = api.root()
    trip = api.folder(root["id"], "Trip")
    photo = api.upload(trip["id"], "beach.jpg", b"sand")
    sub = api.folder(trip["id"], "Sub")
    note = api.upload(sub["id"], "note.txt", b"inside")
    secret_dir = api.folder(root["id"], "Secret")
    secret = api.upload(secret_dir["id"], "c.txt", b"do not leak")
    return {"root": root, "trip": trip, "photo": photo, "sub": sub, "note": note, "secret_dir": secret_dir,
            "secret": secret}


def test_a_file_link_downloads_without_sign_in_and_counts(owner, client, settings):
    root = owner.root()
    node = owner.upload(root["id"], "report final.pdf", b"%PDF-1.7 bytes")
    link = _link(owner, node["id"])
    assert link["url"] == f"{settings.public_url}/s/{link['token']}" and link["state"] == "active"
    assert link["downloads"] == 0 and link["password_required"] is False and link["kind"] == "file"

    info = client.get(f"/s/{link['token']}/info")
    assert info.status_code == 200, info.get_data(as_text=True)
    assert info.json["node"] == {"id": node["id"], "name": "report final.pdf", "kind": "file", "size": 14,
                                 "content_hash": node["content_hash"], "mtime": node["mtime"], "parent_id": None}
    for _ in range(2):
        got = client.get(f"/s/{link['token']}/content")
        assert got.status_code == 200 and got.data == b"%PDF-1.7 bytes"
        assert got.headers["Content-Disposition"] == "attachment; filename*=UTF-8''report%20final.pdf"
        assert got.headers["Cache-Control"] == "no-store" and got.headers["Referrer-Policy"] == "no-referrer"
    assert owner.call("GET", f"/links/{link['id']}").json()["downloads"] == 2

    page = client.get(f"/s/{link['token']}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "report final.pdf" in html and f'href="/s/{link["token"]}/content"' in html
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]

    # a file link has no children and reaches no other node
    other = owner.upload(root["id"], "other.txt", b"other")
    assert client.get(f"/s/{link['token']}/children").status_code == 404
    assert client.get(f"/s/{link['token']}/content", query_string={"node": other["id"]}).status_code == 404
    assert client.get(f"/s/{link['token']}/content", query_string={"path": "../other.txt"}).status_code == 404
    assert client.get(f"/s/{link['token']}/content", query_string={"path": "x"}).status_code == 404
    assert client.get(f"/s/{link['token']}/info", query_string={"node": root["id"]}).status_code == 404
    assert client.get("/s/not-a-real-token-at-all-0000000000/info").status_code == 404


def test_a_folder_link_shows_its_subtree_and_nothing_else(owner, files_api, client):
    t = _tree(owner)
    link = _link(owner, t["trip"]["id"])
    token = link["token"]
    listed = client.get(f"/s/{token}/children").json
    assert [(i["name"], i["kind"]) for i in listed["items"]] == [("beach.jpg", "file"), ("Sub", "folder")]
    assert listed["items"][0]["parent_id"] == t["trip"]["id"] and "owner" not in listed["items"][0]
    assert client.get(f"/s/{token}/info").json["node"]["parent_id"] is None  # nothing above the link shows
    sub = client.get(f"/s/{token}/children", query_string={"node": t["sub"]["id"]}).json
    assert [i["name"] for i in sub["items"]] == ["note.txt"]
    assert client.get(f"/s/{token}/content", query_string={"path": "Sub/note.txt"}).data == b"inside"
    assert client.get(f"/s/{token}/content", query_string={"node": t["note"]["id"]}).data == b"inside"
    assert client.get(f"/s/{token}/children", query_string={"path": "/Sub/"}).json["items"][0]["name"] == "note.txt"

    stranger = files_api()
    elsewhere = stranger.upload(stranger.root()["id"], "theirs.txt", b"theirs")
    for params in ({"node": t["secret"]["id"]}, {"node": t["secret_dir"]["id"]}, {"node": t["root"]["id"]},
                   {"node": elsewhere["id"]}, {"path": "../Secret/c.txt"}, {"path": "Sub/../../Secret/c.txt"},
                   {"path": "./beach.jpg"}, {"path": "beach.jpg/x"}, {"path": "Secret/c.txt"},
                   {"node": t["photo"]["id"] + "/../" + t["secret"]["id"]}):
        for what in ("content", "children", "info"):
            answer = client.get(f"/s/{token}/{what}", query_string=params)
            assert answer.status_code == 404, (what, params, answer.get_data(as_text=True))
            assert b"do not leak" not in answer.data and b"theirs" not in answer.data
    assert client.get(f"/s/{token}", query_string={"node": t["secret_dir"]["id"]}).status_code == 404

    # a trashed node inside the link disappears from it; the owner's tree itself is untouched
    owner.call("DELETE", f"/nodes/{t['sub']['id']}")
    assert client.get(f"/s/{token}/content", query_string={"node": t["note"]["id"]}).status_code == 404
    assert [i["name"] for i in client.get(f"/s/{token}/children").json["items"]] == ["beach.jpg"]
    page = client.get(f"/s/{token}").get_data(as_text=True)
    assert "beach.jpg" in page and f"/s/{token}/content?node={t['photo']['id']}" in page and "Secret" not in page
    owner.call("DELETE", f"/nodes/{t['trip']['id']}")
    assert client.get(f"/s/{token}/info").status_code == 404


def test_passwords_unlock_and_wrong_ones_are_rate_limited(owner, client):
    node = owner.upload(owner.root()["id"], "private.txt", b"private")
    link = _link(owner, node["id"], password="correct horse")
    token = link["token"]
    assert link["password_required"] is True
    stored = owner.call("GET", f"/links/{link['id']}").json()
    assert "password" not in str(stored).replace("password_required", "")
    locked = client.get(f"/s/{token}/content")
    assert locked.status_code == 401 and locked.json["error"]["code"] == "password_required"
    page = client.get(f"/s/{token}")
    assert page.status_code == 401 and b'name="password"' in page.data and b"private" not in page.data

    wrong = client.post(f"/s/{token}/unlock", json={"password": "wrong"})
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "wrong_password"
    ok = client.post(f"/s/{token}/unlock", json={"password": "correct horse"})
    assert ok.status_code == 200 and ok.json["expires_in"] == links.ACCESS_SECONDS
    access = ok.json["access"]
    assert client.get(f"/s/{token}/content", headers={"X-PCloud-Link-Access": access}).data == b"private"
    assert client.get(f"/s/{token}/content", query_string={"access": access}).data == b"private"
    assert client.get(f"/s/{token}/content", headers={"X-PCloud-Link-Access": "forged"}).status_code == 401
    other = _link(owner, node["id"], password="another one")
    assert client.get(f"/s/{other['token']}/content",  # a grant opens only its own link
                      headers={"X-PCloud-Link-Access": access}).status_code == 401

    # the form: a cookie for this link's path, then the page shows the file
    form = client.post(f"/s/{token}/unlock", data={"password": "correct horse"})
    assert form.status_code == 303 and form.headers["Location"].endswith(f"/s/{token}")
    cookie = form.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and f"Path=/s/{token}" in cookie and "SameSite=Lax" in cookie
    shown = client.get(f"/s/{token}")
    assert shown.status_code == 200 and b"private.txt" in shown.data

    for _ in range(links.ATTEMPTS_PER_IP - 1):  # one wrong one above already
        assert client.post(f"/s/{token}/unlock", json={"password": "guess"}).status_code == 403
    limited = client.post(f"/s/{token}/unlock", json={"password": "correct horse"})
    assert limited.status_code == 429 and limited.json["error"]["code"] == "too_many_attempts"
    assert int(limited.headers["Retry-After"]) >= 1
    page = client.post(f"/s/{token}/unlock", data={"password": "x"})
    assert page.status_code == 429 and b"too many wrong passwords" in page.data
    assert client.post(f"/s/{token}/unlock", json={}).status_code == 400


def test_expiry_revocation_and_the_owners_api(owner, files_api, client, clients):
    node = owner.upload(owner.root()["id"], "a.txt", b"a")
    soon = _link(owner, node["id"], expires_in=3600)
    assert soon["expires_at"] is not None
    fixed = _link(owner, node["id"], expires_at=(utcnow() + timedelta(days=2)).isoformat())
    assert fixed["expires_at"].startswith((utcnow() + timedelta(days=2)).date().isoformat())
    clients.db.share_links.update_one({"_id": soon["id"]}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    expired = client.get(f"/s/{soon['token']}/content")
    assert expired.status_code == 410 and expired.json["error"]["code"] == "link_expired"
    page = client.get(f"/s/{soon['token']}")
    assert page.status_code == 410 and b'data-code="link_expired"' in page.data
    assert owner.call("GET", f"/links/{soon['id']}").json()["state"] == "expired"

    stranger = files_api()
    assert stranger.call("GET", f"/links/{fixed['id']}").status_code == 404
    assert stranger.call("DELETE", f"/links/{fixed['id']}").status_code == 404
    assert stranger.call("POST", f"/nodes/{node['id']}/links", json={}).status_code == 404
    assert stranger.call("GET", "/links").json()["items"] == []
    revoked = owner.call("DELETE", f"/links/{fixed['id']}")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    gone = client.get(f"/s/{fixed['token']}/info")
    assert gone.status_code == 410 and gone.json["error"]["code"] == "link_revoked"
    listed = owner.call("GET", "/links", params={"node_id": node["id"]}).json()["items"]
    assert sorted(i["id"] for i in listed) == sorted([fixed["id"], soon["id"]])

    for bad in ({"expires_in": 0}, {"expires_at": "yesterday"}, {"expires_at": "2001-01-01T00:00:00Z"},
                {"expires_in": 5, "expires_at": (utcnow() + timedelta(days=1)).isoformat()}, {"password": ""},
                {"expires_in": "5"}, {"nope": 1}):
        answer = owner.call("POST", f"/nodes/{node['id']}/links", json=bad)
        assert answer.status_code == 400, (bad, answer.text)
    no_body = owner.call("POST", f"/nodes/{node['id']}/links")
    assert no_body.status_code == 201
    owner.call("DELETE", f"/nodes/{node['id']}")
    assert owner.call("POST", f"/nodes/{node['id']}/links", json={}).status_code == 404
    assert client.get(f"/s/{no_body.json()['token']}/info").status_code == 404
