"""Folders shared with people and groups end to end through the gateway (issue 19): read and read-write roles,
the sharee's view (at their root, in their sync feed), revocation, and owner scoping staying strict elsewhere."""

from __future__ import annotations

import pytest

from runtime import groups
from runtime.cursor import decode_cursor
from runtime.ids import utcnow


@pytest.fixture
def people(files_api):
    owner, sharee, stranger = files_api(), files_api(), files_api()
    root = owner.root()
    shared = owner.folder(root["id"], "Family")
    inside = owner.upload(shared["id"], "plan.txt", b"plan v1")
    sub = owner.folder(shared["id"], "Sub")
    private = owner.folder(root["id"], "Private")
    secret = owner.upload(private["id"], "diary.txt", b"secret")
    return {"owner": owner, "sharee": sharee, "stranger": stranger, "root": root, "shared": shared,
            "inside": inside, "sub": sub, "private": private, "secret": secret}


def _share(owner, folder_id, **body):
    made = owner.call("POST", f"/nodes/{folder_id}/shares", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def test_a_read_share_lets_the_sharee_read_and_nothing_more(people):
    owner, sharee, stranger = people["owner"], people["sharee"], people["stranger"]
    share = _share(owner, people["shared"]["id"], email=sharee.user.email, role="read")
    assert share["grantee_type"] == "user" and share["grantee_id"] == sharee.user.id and share["role"] == "read"

    listed = sharee.call("GET", "/shared").json()["items"]
    assert [i["share"]["id"] for i in listed] == [share["id"]]
    mounted = listed[0]["folder"]
    assert mounted["id"] == people["shared"]["id"] and mounted["parent_id"] == sharee.root()["id"]
    assert mounted["shared"] == {"share_id": share["id"], "owner_id": owner.user.id, "role": "read"}
    assert sharee.call("GET", f"/nodes/{people['shared']['id']}").json()["parent_id"] == sharee.root()["id"]
    names = [c["name"] for c in sharee.call("GET", f"/nodes/{people['shared']['id']}/children").json()["items"]]
    assert names == ["plan.txt", "Sub"]
    assert sharee.download(people["inside"]["id"]).content == b"plan v1"
    assert sharee.call("GET", f"/nodes/{people['inside']['id']}").json()["parent_id"] == people["shared"]["id"]

    for method, path, body in (
            ("POST", "/folders", {"parent_id": people["shared"]["id"], "name": "New"}),
            ("PATCH", f"/nodes/{people['inside']['id']}", {"name": "x.txt", "base_rev": people["inside"]["rev"]}),
            ("PATCH", f"/nodes/{people['inside']['id']}", {"metadata": {"a": 1}}),
            ("DELETE", f"/nodes/{people['inside']['id']}", None)):
        refused = sharee.call(method, path, json=body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "read_only_share", (method, path)
    upload = sharee.negotiate(people["shared"]["id"], "new.txt", b"new")
    assert upload.status_code == 403
    overwrite = sharee.negotiate(None, None, b"v2", node_id=people["inside"]["id"], base_rev=people["inside"]["rev"])
    assert overwrite.status_code == 403

    # outside the share, and for anyone else, owner scoping is as strict as ever
    for api in (sharee, stranger):
        for node in (people["private"], people["secret"], people["root"]):
            assert api.call("GET", f"/nodes/{node['id']}").status_code == 404
            assert api.call("GET", f"/nodes/{node['id']}/children").status_code in (404,)
        assert api.download(people["secret"]["id"]).status_code == 404
    assert stranger.call("GET", f"/nodes/{people['shared']['id']}").status_code == 404
    assert stranger.download(people["inside"]["id"]).status_code == 404
    assert stranger.call("GET", "/shared").json()["items"] == []

    assert owner.call("DELETE", f"/shares/{share['id']}").status_code == 200
    assert sharee.call("GET", f"/nodes/{people['shared']['id']}").status_code == 404
    assert sharee.download(people["inside"]["id"]).status_code == 404
    assert sharee.call("GET", "/shared").json()["items"] == []


def test_a_write_share_through_a_group(people, clients):
    owner, sharee = people["owner"], people["sharee"]
    family = groups.create(clients.db, "family", [sharee.user.id], created_by=owner.user.id, now=utcnow())
    share = _share(owner, people["shared"]["id"], group_id=family["_id"], role="write")
    assert share["grantee_type"] == "group"

    made = sharee.call("POST", "/folders", json={"parent_id": people["shared"]["id"], "name": "From sharee"})
    assert made.status_code == 201, made.text
    added = sharee.upload(made.json()["id"], "photo.jpg", b"jpeg")
    assert owner.download(added["id"]).content == b"jpeg"  # it is in the owner's tree, as the owner's
    changed = sharee.upload(None, None, b"plan v2", node_id=people["inside"]["id"], base_rev=people["inside"]["rev"])
    assert owner.download(people["inside"]["id"]).content == b"plan v2"
    assert changed["rev"] == people["inside"]["rev"] + 1
    assert [v["rev"] for v in owner.call("GET", f"/nodes/{changed['id']}/versions").json()["items"]] == \
        [changed["rev"], people["inside"]["rev"]]

    # two sharers editing the same base: the second is refused as stale (the online clients' referee)
    stale = owner.negotiate(None, None, b"plan v2b", node_id=people["inside"]["id"], base_rev=people["inside"]["rev"])
    owner.send(stale.json()["missing"], b"plan v2b")
    refused = owner.commit(stale.json()["upload_id"])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "stale_rev"

    renamed = sharee.call("PATCH", f"/nodes/{added['id']}", json={"name": "beach.jpg", "base_rev": added["rev"]})
    assert renamed.status_code == 200 and renamed.json()["name"] == "beach.jpg"
    moved = sharee.call("PATCH", f"/nodes/{added['id']}",
                        json={"parent_id": people["sub"]["id"], "base_rev": renamed.json()["rev"]})
    assert moved.status_code == 200 and moved.json()["parent_id"] == people["sub"]["id"]
    for target in (people["private"]["id"], sharee.root()["id"], people["root"]["id"]):  # never out of the share
        out = sharee.call("PATCH", f"/nodes/{added['id']}", json={"parent_id": target, "base_rev": moved.json()["rev"]})
        assert out.status_code == 404, target
    for method, body in (("PATCH", {"name": "Mine now", "base_rev": people["shared"]["rev"]}), ("DELETE", None)):
        root_change = sharee.call(method, f"/nodes/{people['shared']['id']}", json=body)
        assert root_change.status_code == 403 and root_change.json()["error"]["code"] == "share_root"
    trashed = sharee.call("DELETE", f"/nodes/{made.json()['id']}")
    assert trashed.status_code == 200 and owner.call("GET", f"/nodes/{made.json()['id']}").json()["trashed_at"]

    groups.remove_member(clients.db, family["_id"], sharee.user.id, utcnow())  # membership counts at once
    assert sharee.call("GET", f"/nodes/{people['shared']['id']}").status_code == 404
    assert sharee.call("POST", "/folders", json={"parent_id": people["shared"]["id"], "name": "x"}).status_code == 404


def test_the_shared_folder_arrives_in_the_sharees_sync_feed_and_leaves_on_revoke(people, client):
    owner, sharee = people["owner"], people["sharee"]
    sharee.root()
    first = client.get("/mobile/v1/changes", headers=sharee.user.headers).json
    assert decode_cursor(first["cursor"]) >= 0  # no shares: the plain cursor it always was
    share = _share(owner, people["shared"]["id"], user_id=sharee.user.id, role="write")

    page = client.get("/mobile/v1/changes", query_string={"cursor": first["cursor"]}, headers=sharee.user.headers).json
    by_id = {c["id"]: c for c in page["changes"]}
    assert set(by_id) == {people["shared"]["id"], people["inside"]["id"], people["sub"]["id"]}
    assert by_id[people["shared"]["id"]]["parent_id"] == sharee.root()["id"]
    assert by_id[people["shared"]["id"]]["shared"]["role"] == "write"
    assert by_id[people["inside"]["id"]]["parent_id"] == people["shared"]["id"]
    assert people["secret"]["id"] not in by_id and people["private"]["id"] not in by_id
    cursor = page["cursor"]

    quiet = client.get("/mobile/v1/changes", query_string={"cursor": cursor}, headers=sharee.user.headers).json
    assert quiet["changes"] == [] and quiet["has_more"] is False
    added = owner.upload(people["sub"]["id"], "new.txt", b"new")
    owner.upload(people["private"]["id"], "hidden.txt", b"hidden")
    mine = sharee.folder(sharee.root()["id"], "Mine")
    page = client.get("/mobile/v1/changes", query_string={"cursor": cursor}, headers=sharee.user.headers).json
    assert [c["id"] for c in page["changes"]] == [mine["id"], added["id"]]

    # paging: a small limit walks the share a node at a time and ends with everything
    seen, c = [], None
    for _ in range(20):
        step = client.get("/mobile/v1/changes", query_string={"limit": 1, **({"cursor": c} if c else {})},
                          headers=sharee.user.headers).json
        seen += [x["id"] for x in step["changes"]]
        c = step["cursor"]
        if not step["has_more"]:
            break
    assert {people["shared"]["id"], people["inside"]["id"], added["id"], mine["id"]} <= set(seen)

    owner.call("DELETE", f"/shares/{share['id']}")
    gone = client.get("/mobile/v1/changes", query_string={"cursor": page["cursor"]}, headers=sharee.user.headers).json
    assert [(g["id"], bool(g["trashed_at"]), g["shared"]["revoked"]) for g in gone["changes"]] == [
        (people["shared"]["id"], True, True)]
    after = client.get("/mobile/v1/changes", query_string={"cursor": gone["cursor"]}, headers=sharee.user.headers).json
    assert after["changes"] == []
    assert decode_cursor(after["cursor"]) >= 0  # back to a plain cursor
    bad = client.get("/mobile/v1/changes", query_string={"cursor": "bTE6e30"}, headers=sharee.user.headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_cursor"


def test_sharing_bad_input_and_only_the_owner_manages(people):
    owner, sharee, stranger = people["owner"], people["sharee"], people["stranger"]
    folder = people["shared"]["id"]
    cases = [({"user_id": sharee.user.id, "role": "admin"}, 400, "invalid_role"),
             ({"user_id": sharee.user.id, "group_id": "g"}, 400, "invalid_grantee"),
             ({}, 400, "invalid_grantee"),
             ({"user_id": owner.user.id}, 400, "invalid_grantee"),
             ({"email": "nobody@example.test"}, 404, "unknown_user"),
             ({"group_id": "nope"}, 404, "unknown_group")]
    for body, status, code in cases:
        answer = owner.call("POST", f"/nodes/{folder}/shares", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), body
    file_share = owner.call("POST", f"/nodes/{people['inside']['id']}/shares", json={"user_id": sharee.user.id})
    assert file_share.status_code == 409 and file_share.json()["error"]["code"] == "not_a_folder"
    root_share = owner.call("POST", f"/nodes/{people['root']['id']}/shares", json={"user_id": sharee.user.id})
    assert root_share.status_code == 400

    share = _share(owner, folder, user_id=sharee.user.id)
    again = _share(owner, folder, user_id=sharee.user.id, role="write")  # sharing again changes the role
    assert again["id"] == share["id"] and again["role"] == "write"
    assert [s["id"] for s in owner.call("GET", f"/nodes/{folder}/shares").json()["items"]] == [share["id"]]
    # a sharee cannot reshare, list or revoke; a stranger even less
    for api in (sharee, stranger):
        assert api.call("POST", f"/nodes/{folder}/shares", json={"user_id": stranger.user.id}).status_code == 404
        assert api.call("GET", f"/nodes/{folder}/shares").status_code == 404
        assert api.call("DELETE", f"/shares/{share['id']}").status_code == 404
        assert api.call("POST", f"/nodes/{folder}/links", json={}).status_code == 404
    assert owner.call("DELETE", f"/shares/{share['id']}").status_code == 200
    assert owner.call("DELETE", f"/shares/{share['id']}").status_code == 404
