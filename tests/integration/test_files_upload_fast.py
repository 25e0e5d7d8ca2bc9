"""Issue 18's upload additions on both BlobStore backends: a window of presigned PUTs and the next ones by
cursor, negotiate-and-commit in one request (commit=if_complete), and many files in one batch request."""

from __future__ import annotations

import os

import pytest

from tests.fixtures.files import BLOCK, blocks_of

pytestmark = pytest.mark.parametrize("store_backend", ["local", "s3"], indirect=True)


def _body(parent_id: str, name: str, data: bytes, **extra) -> dict:
    return {"parent_id": parent_id, "name": name, "size": len(data), "blocks": blocks_of(data), **extra}


def test_a_window_of_urls_then_the_next_ones_by_cursor(files_api):
    api = files_api()
    root = api.root()
    data = os.urandom(2 * BLOCK + 100)
    hashes = [b["hash"] for b in blocks_of(data)]
    first = api.negotiate(root["id"], "big.bin", data, url_window=1)
    assert first.status_code == 201, first.text
    started = first.json()
    assert [m["hash"] for m in started["missing"]] == hashes[:1]
    assert started["missing_count"] == 3 and started["next_after"] == hashes[0]
    got, after = list(started["missing"]), started["next_after"]
    while after:
        page = api.call("GET", f"/uploads/{started['upload_id']}/urls", params={"after": after, "limit": 1})
        assert page.status_code == 200, page.text
        got += page.json()["missing"]
        after = page.json()["next_after"]
        assert page.json()["missing_count"] == 3
    assert [m["hash"] for m in got] == hashes
    for answer in api.send(got, data):
        assert answer.status_code in (200, 201, 204), answer.text
    committed = api.commit(started["upload_id"])
    assert committed.status_code == 201, committed.text
    assert api.download(committed.json()["id"]).content == data
    again = api.call("GET", f"/uploads/{started['upload_id']}/urls")
    assert again.status_code == 409 and again.json()["error"]["code"] == "upload_committed"


def test_without_a_window_every_url_comes_at_once_as_before(files_api):
    api = files_api()
    data = os.urandom(BLOCK + 1)
    started = api.negotiate(api.root()["id"], "a.bin", data).json()
    assert len(started["missing"]) == 2 and started["next_after"] is None and started["missing_count"] == 2
    whole = api.call("GET", f"/uploads/{started['upload_id']}/urls").json()  # fresh links for every block
    assert [m["hash"] for m in whole["missing"]] == [m["hash"] for m in started["missing"]]
    assert whole["next_after"] is None


def test_bad_window_cursor_limit_and_unknown_upload(files_api):
    api, other = files_api(), files_api()
    data = os.urandom(100)
    started = api.negotiate(api.root()["id"], "a.bin", data).json()
    urls = f"/uploads/{started['upload_id']}/urls"
    not_missing = "0" * 64
    for params, code in (({"after": not_missing}, "invalid_cursor"), ({"after": "zz"}, "invalid_cursor"),
                         ({"limit": 0}, "invalid_limit"), ({"limit": 1001}, "invalid_limit"),
                         ({"limit": "x"}, "invalid_limit")):
        answer = api.call("GET", urls, params=params)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code, (params, answer.text)
    assert api.call("GET", "/uploads/nope/urls").status_code == 404
    assert other.call("GET", urls).status_code == 404  # another user's upload
    for window in (0, 1001, "5", True):
        bad = api.negotiate(api.root()["id"], "b.bin", data, url_window=window)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_url_window", bad.text
    bad = api.negotiate(api.root()["id"], "b.bin", data, commit="always")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_commit"


def test_commit_if_complete_commits_in_the_negotiation(files_api, clients):
    api = files_api()
    root = api.root()
    data = os.urandom(BLOCK + 10)
    first = api.negotiate(root["id"], "a.bin", data, commit="if_complete").json()
    assert first["committed"] is False and first["missing_count"] == 2 and first.get("node") is None
    api.send(first["missing"], data)
    api.commit(first["upload_id"])
    before = api.requests_made
    again = api.negotiate(root["id"], "copy.bin", data, commit="if_complete")
    assert again.status_code == 201, again.text
    body = again.json()
    assert body["committed"] is True and body["created"] is True and body["missing"] == []
    assert body["node"]["name"] == "copy.bin" and body["node"]["size"] == len(data)
    assert api.requests_made == before + 1
    assert api.download(body["node"]["id"]).content == data
    assert clients.db.uploads.find_one({"_id": body["upload_id"]})["status"] == "committed"
    assert api.commit(body["upload_id"]).status_code == 201  # committing again answers the same node
    assert clients.db.blocks.find_one({"_id": blocks_of(data)[0]["hash"]})["refs"] == 2

    node = body["node"]
    over = api.negotiate(None, None, data, node_id=node["id"], base_rev=node["rev"], commit="if_complete")
    assert over.status_code == 200, over.text
    assert over.json()["committed"] is True and over.json()["created"] is False
    assert over.json()["node"]["rev"] == node["rev"] + 1

    stale = api.negotiate(None, None, data, node_id=node["id"], base_rev=node["rev"], commit="if_complete")
    assert stale.status_code == 201 and stale.json()["committed"] is False
    assert stale.json()["commit_error"]["code"] == "stale_rev"
    assert api.commit(stale.json()["upload_id"]).json()["error"]["code"] == "stale_rev"  # still pending

    taken = api.negotiate(root["id"], "COPY.bin", data, commit="if_complete").json()
    assert taken["committed"] is False and taken["commit_error"]["code"] == "name_taken"


def test_a_batch_negotiates_and_commits_many_files_in_one_request(files_api, clients):
    api = files_api()
    root = api.root()
    first, second = api.folder(root["id"], "first"), api.folder(root["id"], "second")
    files = {f"f{i}.jpg": os.urandom(1000 + i) for i in range(5)}
    files["empty.txt"] = b""
    answer = api.call("POST", "/uploads/batch", json={"uploads": [
        _body(first["id"], name, data, commit="if_complete") for name, data in files.items()]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201] * 6
    assert [r["committed"] for r in results] == [False] * 5 + [True]  # nothing to send for an empty file
    for result, data in zip(results[:5], list(files.values())[:5], strict=True):
        api.send(result["missing"], data)
        assert api.commit(result["upload_id"]).status_code == 201

    before, sent = api.requests_made, api.block_bytes_sent
    again = api.call("POST", "/uploads/batch", json={"uploads": [
        _body(second["id"], name, data, commit="if_complete") for name, data in files.items()]})
    assert again.status_code == 200, again.text
    assert api.requests_made == before + 1 and api.block_bytes_sent == sent
    results = again.json()["results"]
    assert all(r["committed"] and r["status"] == 201 and r["missing"] == [] for r in results), results
    listed = api.call("GET", f"/nodes/{second['id']}/children").json()["items"]
    assert sorted(n["name"] for n in listed) == sorted(files)
    assert all(r["node"]["parent_id"] == second["id"] for r in results)


def test_a_bad_item_answers_its_own_error_and_the_batch_goes_on(files_api):
    api = files_api()
    root = api.root()
    data = os.urandom(50)
    items = [_body(root["id"], "ok.bin", data), {"parent_id": root["id"], "name": "bad", "size": 1,
                                                 "blocks": [{"hash": "nothex", "size": 1}]},
             "not an object", _body("no-such-folder", "x.bin", data), _body(root["id"], "a/b", data)]
    answer = api.call("POST", "/uploads/batch", json={"uploads": items})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0]["status"] == 201 and results[0]["upload_id"]
    assert [(r["status"], r["error"]["code"]) for r in results[1:]] == [
        (400, "invalid_hash"), (400, "invalid_request"), (404, "not_found"), (400, "invalid_name")]


def test_oversized_and_malformed_batches_are_refused(files_api, settings):
    api = files_api()
    root = api.root()
    item = _body(root["id"], "x.bin", b"x")
    too_many = api.call("POST", "/uploads/batch", json={"uploads": [item] * 501})
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_uploads"
    limit = settings.max_blocks_per_file
    big = {"parent_id": root["id"], "name": "big", "size": BLOCK * (limit // 2 + 1),
           "blocks": [{"hash": f"{i:064x}", "size": BLOCK} for i in range(limit // 2 + 1)]}
    blocks = api.call("POST", "/uploads/batch", json={"uploads": [big, big]})
    assert blocks.status_code == 413 and blocks.json()["error"]["code"] == "too_many_blocks"
    for bad in ({"uploads": "x"}, {}, {"uploads": None}):
        answer = api.call("POST", "/uploads/batch", json=bad)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_uploads", answer.text
    assert api.call("POST", "/uploads/batch", json={"uploads": []}).json() == {"results": []}


def test_a_first_backup_in_three_requests_negotiate_put_commit(files_api):
    api = files_api()
    root = api.root()
    files = {f"p{i}.jpg": os.urandom(2000 + i) for i in range(4)}
    negotiated = api.call("POST", "/uploads/batch", json={"uploads": [
        _body(root["id"], name, data, commit="if_complete") for name, data in files.items()]}).json()["results"]
    for result, data in zip(negotiated, files.values(), strict=True):
        api.send(result["missing"], data)
    ids = [r["upload_id"] for r in negotiated]
    bob = files_api()
    other = bob.call("POST", "/uploads", json=_body(bob.root()["id"], "x", b"")).json()  # not this user's
    answer = api.call("POST", "/uploads/commit", json={"upload_ids": [*ids, "nope", other["upload_id"], 7]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201] * 4 + [404, 404, 404]
    assert [r["node"]["name"] for r in results[:4]] == list(files)
    assert results[4]["error"]["code"] == "not_found" and results[6]["upload_id"] is None
    again = api.call("POST", "/uploads/commit", json={"upload_ids": ids[:1]}).json()["results"]
    assert again[0]["node"]["id"] == results[0]["node"]["id"]  # idempotent
    unsent = api.call("POST", "/uploads/batch", json={"uploads": [_body(root["id"], "u.bin", os.urandom(9))]})
    missing = api.call("POST", "/uploads/commit", json={"upload_ids": [unsent.json()["results"][0]["upload_id"]]})
    assert missing.json()["results"][0]["error"]["code"] == "blocks_missing"
    assert api.call("POST", "/uploads/commit", json={"upload_ids": ["a"] * 501}).status_code == 413
    bad = api.call("POST", "/uploads/commit", json={"upload_ids": "a"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_upload_ids"
