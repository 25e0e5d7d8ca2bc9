"""The tree over HTTP: folders, names, paging, rename/move with base_rev, cycles, trash and restore, 404s.

The tree does not touch the object store except through uploads and downloads, so only the tests that move
content around run on both backends."""

from __future__ import annotations

import unicodedata

import pytest

BOTH_STORES = pytest.mark.parametrize("store_backend", ["local", "s3"], indirect=True)


def _error(response):
    return response.json()["error"]["code"]


def test_root_is_created_once_and_is_a_folder(files_api):
    api = files_api()
    first, second = api.root(), api.root()
    assert first == second
    assert first["kind"] == "folder" and first["parent_id"] is None and first["name"] == ""


def test_folders_children_paging_and_name_rules(files_api):
    api = files_api()
    root = api.root()
    names = [f"f{i:02d}" for i in range(7)]
    for name in reversed(names):
        api.folder(root["id"], name)
    seen, cursor = [], None
    while True:
        page = api.call("GET", f"/nodes/{root['id']}/children", params={"limit": 3, **({"cursor": cursor} if cursor
                                                                                       else {})}).json()
        seen += [n["name"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names

    taken = api.call("POST", "/folders", json={"parent_id": root["id"], "name": "F00"})
    assert taken.status_code == 409 and _error(taken) == "name_taken"
    decomposed = unicodedata.normalize("NFD", "café")
    made = api.folder(root["id"], decomposed)
    assert made["name"] == unicodedata.normalize("NFC", "café")
    again = api.call("POST", "/folders", json={"parent_id": root["id"], "name": "CAFÉ"})
    assert again.status_code == 409 and _error(again) == "name_taken"


def test_bad_names_are_invalid_name(files_api):
    api = files_api()
    root = api.root()["id"]
    for name in ["a/b", "nul\x00", "..", ".", "", "é" * 128, 42, None]:
        response = api.call("POST", "/folders", json={"parent_id": root, "name": name})
        assert response.status_code == 400 and _error(response) == "invalid_name", name
        upload = api.call("POST", "/uploads", json={"parent_id": root, "name": name, "size": 0, "blocks": []})
        assert upload.status_code == 400 and _error(upload) == "invalid_name", name
    assert api.call("GET", f"/nodes/{root}/children").json()["items"] == []


def test_a_name_of_255_bytes_is_fine(files_api):
    api = files_api()
    assert api.folder(api.root()["id"], "é" * 127 + "x")["name"] == "é" * 127 + "x"


@BOTH_STORES
def test_rename_and_move_with_base_rev(files_api):
    api = files_api()
    root = api.root()
    a, b = api.folder(root["id"], "a"), api.folder(root["id"], "b")
    renamed = api.call("PATCH", f"/nodes/{a['id']}", json={"name": "a2", "base_rev": a["rev"]})
    assert renamed.status_code == 200 and renamed.json()["name"] == "a2" and renamed.json()["rev"] == a["rev"] + 1
    stale = api.call("PATCH", f"/nodes/{a['id']}", json={"name": "a3", "base_rev": a["rev"]})
    assert stale.status_code == 409 and _error(stale) == "stale_rev"
    assert stale.json()["error"]["details"]["node"] == renamed.json()
    moved = api.call("PATCH", f"/nodes/{a['id']}", json={"parent_id": b["id"], "base_rev": renamed.json()["rev"]})
    assert moved.status_code == 200 and moved.json()["parent_id"] == b["id"]
    clash = api.folder(root["id"], "a2")
    back = api.call("PATCH", f"/nodes/{a['id']}", json={"parent_id": root["id"], "base_rev": moved.json()["rev"]})
    assert back.status_code == 409 and _error(back) == "name_taken"
    case_only = api.call("PATCH", f"/nodes/{clash['id']}", json={"name": "A2", "base_rev": clash["rev"]})
    assert case_only.status_code == 200 and case_only.json()["name"] == "A2"
    missing_rev = api.call("PATCH", f"/nodes/{a['id']}", json={"name": "z"})
    assert missing_rev.status_code == 400


def test_moving_a_folder_into_its_own_subtree_is_a_cycle(files_api):
    api = files_api()
    top = api.folder(api.root()["id"], "top")
    child = api.folder(top["id"], "child")
    grandchild = api.folder(child["id"], "grandchild")
    for target in (top, grandchild):
        response = api.call("PATCH", f"/nodes/{top['id']}", json={"parent_id": target["id"], "base_rev": top["rev"]})
        assert response.status_code == 409 and _error(response) == "cycle"
    into_file = api.upload(api.root()["id"], "f.txt", b"x")
    response = api.call("PATCH", f"/nodes/{child['id']}", json={"parent_id": into_file["id"], "base_rev": child["rev"]})
    assert response.status_code == 409 and _error(response) == "not_a_folder"


@BOTH_STORES
def test_trash_is_recursive_and_restore_brings_the_group_back(files_api):
    api = files_api()
    root = api.root()
    photos = api.folder(root["id"], "photos")
    trip = api.folder(photos["id"], "trip")
    pic = api.upload(trip["id"], "pic.jpg", b"jpeg bytes")
    early = api.upload(photos["id"], "old.jpg", b"old bytes")
    api.call("DELETE", f"/nodes/{early['id']}")  # trashed on its own, before the folder

    stale = api.call("DELETE", f"/nodes/{photos['id']}", params={"base_rev": photos["rev"] - 1})
    assert stale.status_code == 409 and _error(stale) == "stale_rev"
    trashed = api.call("DELETE", f"/nodes/{photos['id']}", params={"base_rev": photos["rev"]})
    assert trashed.status_code == 200 and trashed.json()["trashed_at"] is not None
    assert api.call("GET", f"/nodes/{pic['id']}").json()["trashed_at"] is not None
    listing = api.call("GET", "/trash").json()
    assert sorted(n["name"] for n in listing["items"]) == ["old.jpg", "photos"]
    assert [n["name"] for n in api.call("GET", f"/nodes/{root['id']}/children").json()["items"]] == []
    # the name is free while the folder is in the trash
    reused = api.folder(root["id"], "photos")

    conflict = api.call("POST", f"/nodes/{photos['id']}/restore")
    assert conflict.status_code == 409 and _error(conflict) == "name_taken"
    api.call("DELETE", f"/nodes/{reused['id']}")
    restored = api.call("POST", f"/nodes/{photos['id']}/restore")
    assert restored.status_code == 200 and restored.json()["trashed_at"] is None
    assert api.call("GET", f"/nodes/{pic['id']}").json()["trashed_at"] is None
    assert api.call("GET", f"/nodes/{early['id']}").json()["trashed_at"] is not None  # not part of that group
    assert api.download(pic["id"]).content == b"jpeg bytes"


def test_restoring_a_node_inside_a_trashed_folder_restores_its_ancestors(files_api):
    api = files_api()
    outer = api.folder(api.root()["id"], "outer")
    inner = api.folder(outer["id"], "inner")
    leaf = api.upload(inner["id"], "leaf", b"leaf")
    sibling = api.upload(outer["id"], "sibling", b"sib")
    api.call("DELETE", f"/nodes/{outer['id']}")
    restored = api.call("POST", f"/nodes/{leaf['id']}/restore")
    assert restored.status_code == 200 and restored.json()["trashed_at"] is None
    assert api.call("GET", f"/nodes/{outer['id']}").json()["trashed_at"] is None
    assert api.call("GET", f"/nodes/{inner['id']}").json()["trashed_at"] is None
    assert api.call("GET", f"/nodes/{sibling['id']}").json()["trashed_at"] is not None


def test_another_users_nodes_are_404_on_every_verb(files_api):
    alice, bob = files_api(), files_api()
    folder = alice.folder(alice.root()["id"], "mine")
    file = alice.upload(folder["id"], "f", b"alice's")
    calls = [("GET", f"/nodes/{folder['id']}", None), ("GET", f"/nodes/{folder['id']}/children", None),
             ("PATCH", f"/nodes/{folder['id']}", {"name": "x", "base_rev": folder["rev"]}),
             ("DELETE", f"/nodes/{folder['id']}", None), ("POST", f"/nodes/{folder['id']}/restore", None),
             ("GET", f"/nodes/{file['id']}/content", None),
             ("POST", "/folders", {"parent_id": folder["id"], "name": "in"}),
             ("POST", "/uploads", {"parent_id": folder["id"], "name": "in", "size": 0, "blocks": []}),
             ("POST", "/uploads", {"node_id": file["id"], "base_rev": file["rev"], "size": 0, "blocks": []}),
             ("PATCH", f"/nodes/{bob.root()['id']}", {"name": "x", "base_rev": 1}),
             ("GET", "/nodes/not-an-id", None)]
    for method, path, body in calls:
        response = bob.call(method, path, json=body)
        if path.startswith(f"/nodes/{bob.root()['id']}"):
            assert response.status_code == 400  # bob's own root cannot be renamed
            continue
        assert response.status_code == 404, (method, path, response.text)
        assert _error(response) == "not_found"
    assert alice.call("GET", f"/nodes/{folder['id']}").json()["name"] == "mine"


def test_requests_without_a_token_are_401(files_gateway):
    import requests

    response = requests.get(f"{files_gateway.url}/files/v1/root", timeout=10)
    assert response.status_code == 401
