"""Versions (kept on overwrite, listed, downloaded, restored, pruned, counted by block GC) and per-node metadata
(PATCH, limits, sync feed, search) through the real gateway (issue 19)."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest

from functions.files import gc, versions
from runtime.ids import utcnow


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _overwrite(api, node: dict, data: bytes) -> dict:
    return api.upload(None, None, data, node_id=node["id"], base_rev=node["rev"])


def test_overwrites_keep_versions_that_list_download_and_restore(files_api, clients):
    api = files_api()
    root = api.root()
    first = api.upload(root["id"], "notes.txt", b"one")
    second = _overwrite(api, first, b"two")
    third = _overwrite(api, second, b"three")

    listed = api.call("GET", f"/nodes/{first['id']}/versions").json()
    assert [(v["rev"], v["current"], v["size"]) for v in listed["items"]] == [
        (third["rev"], True, 5), (second["rev"], False, 3), (first["rev"], False, 3)]
    assert listed["items"][1]["content_hash"] == second["content_hash"] and listed["items"][1]["kept_at"]
    assert listed["next_cursor"] is None
    old = api.call("GET", f"/nodes/{first['id']}/versions/{first['rev']}/content")
    assert old.status_code == 200 and old.content == b"one"

    stale = api.call("POST", f"/nodes/{first['id']}/versions/{first['rev']}/restore", json={"base_rev": 1})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_rev"
    restored = api.call("POST", f"/nodes/{first['id']}/versions/{first['rev']}/restore")
    assert restored.status_code == 200, restored.text
    node = restored.json()
    assert node["rev"] == third["rev"] + 1 and node["content_hash"] == first["content_hash"]
    assert api.download(first["id"]).content == b"one"
    # the content the restore replaced is a version in its turn
    revs = [v["rev"] for v in api.call("GET", f"/nodes/{first['id']}/versions").json()["items"]]
    assert revs == [node["rev"], third["rev"], second["rev"], first["rev"]]

    assert api.call("POST", f"/nodes/{first['id']}/versions/999/restore").json()["error"]["code"] == \
        "version_not_found"
    folder = api.folder(root["id"], "docs")
    assert api.call("GET", f"/nodes/{folder['id']}/versions").status_code == 409
    other = files_api()
    assert other.call("GET", f"/nodes/{first['id']}/versions").status_code == 404
    assert other.call("POST", f"/nodes/{first['id']}/versions/{first['rev']}/restore").status_code == 404
    assert other.call("GET", f"/nodes/{first['id']}/versions/{first['rev']}/content").status_code == 404


def test_block_gc_never_takes_a_kept_versions_blocks_and_pruning_frees_them(files_api, clients, settings):
    api = files_api()
    node = api.upload(api.root()["id"], "report.bin", b"v1-bytes")
    node = _overwrite(api, node, b"v2-bytes")
    assert clients.db.blocks.find_one({"_id": _sha(b"v1-bytes")})["refs"] == 1  # held by the version alone
    much_later = utcnow() + gc.BLOCK_GRACE * 3
    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=much_later) == 0
    assert clients.store.head(_sha(b"v1-bytes")) == 8

    # older than PCLOUD_VERSIONS_DAYS: hidden at once, dropped by the pruner, then collected
    past_days = utcnow() + timedelta(days=settings.versions_days, hours=1)
    assert versions.visible(clients.db, api.user.id, node["id"], keep_count=10, days=settings.versions_days,
                            now=past_days) == []
    assert versions.prune(clients.db, clients.mongo, keep_count=10, days=settings.versions_days,
                          now=past_days) == 1
    assert clients.db.blocks.find_one({"_id": _sha(b"v1-bytes")})["refs"] == 0
    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=past_days + gc.BLOCK_GRACE * 2) == 1
    assert clients.store.head(_sha(b"v1-bytes")) is None
    assert api.download(node["id"]).content == b"v2-bytes"


def test_only_the_newest_versions_are_kept_and_purge_takes_them_all(files_api, clients, settings):
    api = files_api()
    node = api.upload(api.root()["id"], "log.txt", b"0")
    for i in range(1, settings.versions_keep + 3):
        node = _overwrite(api, node, str(i).encode())
    items = api.call("GET", f"/nodes/{node['id']}/versions").json()["items"]
    assert len(items) == settings.versions_keep + 1  # current + the newest 10
    oldest_shown = items[-1]["rev"]
    assert versions.prune(clients.db, clients.mongo, keep_count=settings.versions_keep,
                          days=settings.versions_days, now=utcnow()) == 2
    assert clients.db.blocks.find_one({"_id": _sha(b"0")})["refs"] == 0
    assert [v["rev"] for v in api.call("GET", f"/nodes/{node['id']}/versions").json()["items"]][-1] == oldest_shown

    api.call("DELETE", f"/nodes/{node['id']}")
    later = utcnow() + timedelta(days=settings.trash_days, minutes=1)
    assert gc.purge_trash(clients.db, clients.mongo, settings.trash_days, now=later) == 1
    assert clients.db.file_versions.count_documents({"node_id": node["id"]}) == 0
    assert clients.db.blocks.count_documents({"refs": {"$gt": 0}}) == 0


def test_metadata_is_set_replaced_cleared_and_limited(files_api, clients):
    api = files_api()
    root = api.root()
    folder = api.folder(root["id"], "Trips")
    meta = {"project": "apollo", "tags": ["moon", "1969"], "$odd.key": {"nested": True}}
    set_ = api.call("PATCH", f"/nodes/{folder['id']}", json={"metadata": meta})
    assert set_.status_code == 200, set_.text
    assert set_.json()["metadata"] == meta and set_.json()["rev"] == folder["rev"] + 1
    assert api.call("GET", f"/nodes/{folder['id']}").json()["metadata"] == meta
    same = api.call("PATCH", f"/nodes/{folder['id']}", json={"metadata": meta}).json()
    assert same["rev"] == folder["rev"] + 1  # no change, no new revision

    both = api.call("PATCH", f"/nodes/{folder['id']}",
                    json={"name": "Travel", "metadata": {"a": 1}, "base_rev": same["rev"]}).json()
    assert both["name"] == "Travel" and both["metadata"] == {"a": 1}
    stale = api.call("PATCH", f"/nodes/{folder['id']}", json={"metadata": {"b": 2}, "base_rev": 1})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_rev"
    cleared = api.call("PATCH", f"/nodes/{folder['id']}", json={"metadata": None}).json()
    assert "metadata" not in cleared

    big = {"blob": "x" * 4096}
    too_big = api.call("PATCH", f"/nodes/{folder['id']}", json={"metadata": big})
    assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "metadata_too_large"
    assert too_big.json()["error"]["details"]["max_bytes"] == 4096
    not_object = api.call("PATCH", f"/nodes/{folder['id']}", json={"metadata": ["a"]})
    assert not_object.status_code == 400 and not_object.json()["error"]["code"] == "invalid_metadata"
    rename_without_rev = api.call("PATCH", f"/nodes/{folder['id']}", json={"name": "x"})
    assert rename_without_rev.json()["error"]["code"] == "invalid_base_rev"
    assert files_api().call("PATCH", f"/nodes/{folder['id']}", json={"metadata": {"a": 1}}).status_code == 404
    on_root = api.call("PATCH", f"/nodes/{root['id']}", json={"metadata": {"home": True}})
    assert on_root.status_code == 200 and on_root.json()["metadata"] == {"home": True}


def test_metadata_reaches_the_sync_feed(files_api, client):
    api = files_api()
    node = api.upload(api.root()["id"], "a.txt", b"a")
    feed = client.get("/mobile/v1/changes", headers=api.user.headers).json
    api.call("PATCH", f"/nodes/{node['id']}", json={"metadata": {"starred": True}})
    changes = client.get("/mobile/v1/changes", query_string={"cursor": feed["cursor"]},
                         headers=api.user.headers).json["changes"]
    assert [(c["id"], c.get("metadata")) for c in changes] == [(node["id"], {"starred": True})]


@pytest.fixture
def env(env, tmp_path):
    env["PCLOUD_DATA_DIR"] = str(tmp_path / "data")  # this test's own search index
    return env


def _ids(client, user, q):
    resp = client.get("/search/v1", query_string={"q": q}, headers=user.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [i["id"] for i in resp.json["items"]]


def _wait(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_metadata_is_searchable(files_api, client, running_indexer):
    api = files_api()
    node = api.upload(api.root()["id"], "scan.pdf", b"%PDF")
    api.call("PATCH", f"/nodes/{node['id']}", json={"metadata": {"project": "Apollo", "tags": ["lunar module"]}})
    assert _wait(lambda: _ids(client, api.user, "lunar")) == [node["id"]]
    assert _ids(client, api.user, "meta_project:apollo") == [node["id"]]
    assert _ids(client, files_api().user, "lunar") == []
    api.call("PATCH", f"/nodes/{node['id']}", json={"metadata": {"project": "gemini"}})
    assert _wait(lambda: _ids(client, api.user, "lunar") == []) is True
    assert _ids(client, api.user, "gemini") == [node["id"]]
