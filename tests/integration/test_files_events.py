"""files.node.* events with data.node and data.path (CONTRACT §8), and GET /files/v1/path."""

from __future__ import annotations

import requests

from functions.files import gc


def _events(api, after=0):
    resp = requests.get(f"{api.base}/events/v1", params={"type": "files.node", "after": after, "limit": 500},
                        headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_every_file_change_appends_its_event_with_the_path(files_api, clients, settings):
    api = files_api()
    root = api.root()
    camera = api.folder(root["id"], "Camera")
    api.upload(camera["id"], "IMG_0.jpg", b"first")
    img = api.call("GET", "/path", params={"path": "/Camera/IMG_0.jpg"}).json()
    api.upload(camera["id"], None, b"new bytes", node_id=img["id"], base_rev=img["rev"])
    current = api.call("GET", f"/nodes/{img['id']}").json()
    renamed = api.call("PATCH", f"/nodes/{img['id']}", json={"name": "IMG_2.jpg", "base_rev": current["rev"]}).json()
    assert renamed["name"] == "IMG_2.jpg"
    assert api.call("DELETE", f"/nodes/{camera['id']}").status_code in (200, 204)
    assert api.call("POST", f"/nodes/{camera['id']}/restore").status_code == 200
    seen = [(e["type"].rsplit(".", 1)[1], e["data"]["path"]) for e in _events(api)]
    assert seen[:3] == [("created", "/Camera"), ("created", "/Camera/IMG_0.jpg"), ("updated", "/Camera/IMG_0.jpg")]
    assert ("updated", "/Camera/IMG_2.jpg") in seen
    assert ("trashed", "/Camera") in seen and ("trashed", "/Camera/IMG_2.jpg") in seen
    assert ("restored", "/Camera") in seen and ("restored", "/Camera/IMG_2.jpg") in seen
    last = _events(api)[-1]
    assert last["data"]["node"]["id"] in (camera["id"], img["id"]) and last["owner"] == api.user.id
    assert set(last["data"]["node"]) >= {"id", "parent_id", "name", "kind", "rev", "size", "content_hash"}

    assert api.call("DELETE", f"/nodes/{camera['id']}").status_code in (200, 204)
    gc.purge_trash(clients.db, clients.mongo, 0)
    purged = [e for e in _events(api) if e["type"] == "files.node.purged"]
    assert {e["data"]["path"] for e in purged} == {"/Camera", "/Camera/IMG_2.jpg"}
    seqs = [e["seq"] for e in _events(api)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_path_lookup_finds_live_nodes_only_and_only_the_callers(files_api):
    api, other = files_api(), files_api()
    root = api.root()
    camera = api.folder(root["id"], "Camera")
    api.upload(camera["id"], "IMG_1.jpg", b"bytes")
    found = api.call("GET", "/path", params={"path": "/Camera/IMG_1.jpg"})
    assert found.status_code == 200 and found.json()["name"] == "IMG_1.jpg"
    assert api.call("GET", "/path", params={"path": "/camera/img_1.JPG"}).json()["name"] == "IMG_1.jpg"
    assert api.call("GET", "/path", params={"path": "/"}).json()["id"] == root["id"]
    assert api.call("GET", "/path", params={"path": "/Camera/"}).json()["id"] == camera["id"]
    assert api.call("GET", "/path", params={"path": "/Camera/nope.jpg"}).status_code == 404
    assert api.call("GET", "/path", params={"path": "/Camera/IMG_1.jpg/x"}).status_code == 404
    assert other.call("GET", "/path", params={"path": "/Camera/IMG_1.jpg"}).status_code == 404
    bad = api.call("GET", "/path", params={"path": "Camera"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_path"
    assert api.call("GET", "/path").status_code == 400
    api.call("DELETE", f"/nodes/{camera['id']}")
    assert api.call("GET", "/path", params={"path": "/Camera/IMG_1.jpg"}).status_code == 404


def test_renaming_a_folder_gives_every_node_below_it_its_new_path(files_api):
    api = files_api()
    photos = api.folder(api.root()["id"], "Photos")
    trip = api.folder(photos["id"], "Trip")
    api.upload(trip["id"], "a.jpg", b"a")
    after = _events(api)[-1]["seq"]
    resp = api.call("PATCH", f"/nodes/{photos['id']}", json={"name": "Camera", "base_rev": photos["rev"]})
    assert resp.status_code == 200, resp.text
    moved = _events(api, after=after)
    assert [(e["type"], e["data"]["path"]) for e in moved] == [
        ("files.node.updated", "/Camera"), ("files.node.updated", "/Camera/Trip"),
        ("files.node.updated", "/Camera/Trip/a.jpg")]
