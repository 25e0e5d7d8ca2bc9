"""The issue's bad-input list, each a test: a clear JSON error and nothing written."""

from __future__ import annotations

import hashlib

import pytest

from tests.fixtures.files import BLOCK

H = hashlib.sha256(b"x").hexdigest()
H2 = hashlib.sha256(b"y").hexdigest()


@pytest.fixture
def api(files_api):
    return files_api()


def _negotiate(api, **body):
    body = {"parent_id": api.root()["id"], "name": "f.bin", **body}
    return api.call("POST", "/uploads", json=body)


def _assert_error(response, status: int, code: str):
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message", "details"}


def _nothing_written(api, clients):
    assert clients.db.uploads.count_documents({"owner": api.user.id}) == 0
    assert clients.db.nodes.count_documents({"owner": api.user.id, "kind": "file"}) == 0


@pytest.mark.parametrize("digest", [H.upper(), H[:63], H + "0", "g" * 64, 42, None, H[:-1] + "\n"])
def test_block_hash_not_64_lowercase_hex(api, clients, digest):
    _assert_error(_negotiate(api, size=1, blocks=[{"hash": digest, "size": 1}]), 400, "invalid_hash")
    _nothing_written(api, clients)


@pytest.mark.parametrize("sizes", [[BLOCK - 1, 10], [BLOCK + 1], [BLOCK, BLOCK + 1], [0], [-1], [BLOCK, 0]])
def test_block_size_not_4_mib_except_the_last(api, clients, sizes):
    blocks = [{"hash": H, "size": s} for s in sizes]
    _assert_error(_negotiate(api, size=max(sum(sizes), 0), blocks=blocks), 400, "invalid_block_size")
    _nothing_written(api, clients)


def test_one_hash_with_two_sizes(api, clients):
    _assert_error(_negotiate(api, size=BLOCK + 1, blocks=[{"hash": H, "size": BLOCK}, {"hash": H, "size": 1}]),
                  400, "invalid_block_size")
    _nothing_written(api, clients)


def test_sizes_not_summing_to_size(api, clients):
    _assert_error(_negotiate(api, size=BLOCK + 2, blocks=[{"hash": H, "size": BLOCK}, {"hash": H2, "size": 1}]),
                  400, "size_mismatch")
    _assert_error(_negotiate(api, size=5, blocks=[]), 400, "size_mismatch")
    _assert_error(_negotiate(api, size=-1, blocks=[]), 400, "invalid_size")
    _assert_error(_negotiate(api, size="1", blocks=[{"hash": H, "size": 1}]), 400, "invalid_size")
    _nothing_written(api, clients)


def test_more_than_10000_blocks(api, clients):
    blocks = [{"hash": H, "size": BLOCK}] * 10001
    _assert_error(_negotiate(api, size=BLOCK * 10001, blocks=blocks), 413, "too_many_blocks")
    _nothing_written(api, clients)


@pytest.fixture
def two_block_limit(env):
    env["PCLOUD_MAX_BLOCKS_PER_FILE"] = "2"  # before `settings` is built from env


def test_the_block_limit_is_configurable(two_block_limit, files_api):
    api = files_api()
    blocks = [{"hash": H, "size": BLOCK}] * 2 + [{"hash": H2, "size": 1}]
    response = _negotiate(api, size=BLOCK * 2 + 1, blocks=blocks)
    _assert_error(response, 413, "too_many_blocks")
    assert response.json()["error"]["details"]["max_blocks"] == 2
    assert _negotiate(api, size=BLOCK + 1, blocks=blocks[1:]).status_code == 201


@pytest.mark.parametrize("body", [b"not json", b"[1]", b""])
def test_bodies_that_are_not_a_json_object(api, body):
    for path in ("/uploads", "/folders"):
        response = api.call("POST", path, data=body, headers={"Content-Type": "application/json"})
        _assert_error(response, 400, "invalid_json")


def test_bad_mtime_base_rev_and_cursor(api, clients):
    _assert_error(_negotiate(api, size=0, blocks=[], mtime="yesterday"), 400, "invalid_mtime")
    _assert_error(_negotiate(api, size=0, blocks=[], base_rev=3), 400, "invalid_base_rev")
    root = api.root()["id"]
    _assert_error(api.call("GET", f"/nodes/{root}/children", params={"cursor": "nope"}), 400, "invalid_cursor")
    _assert_error(api.call("GET", f"/nodes/{root}/children", params={"limit": "0"}), 400, "invalid_limit")
    _assert_error(api.call("DELETE", f"/nodes/{root}", params={"base_rev": "x"}), 400, "invalid_base_rev")
    _assert_error(api.call("PATCH", f"/nodes/{root}", json={"name": "x", "base_rev": "1"}), 400, "invalid_base_rev")
    _nothing_written(api, clients)


def test_overwrite_needs_a_file_and_a_base_rev(api):
    folder = api.folder(api.root()["id"], "dir")
    _assert_error(api.call("POST", "/uploads", json={"node_id": folder["id"], "base_rev": 1, "size": 0,
                                                     "blocks": []}), 409, "not_a_file")
    file = api.upload(api.root()["id"], "f", b"1")
    _assert_error(api.call("POST", "/uploads", json={"node_id": file["id"], "size": 0, "blocks": []}),
                  400, "invalid_base_rev")
    _assert_error(api.download(folder["id"]), 409, "not_a_file")


def test_name_taken_at_commit_loses_nothing(api):
    root = api.root()["id"]
    first = api.upload(root, "Report.pdf", b"first")
    negotiated = api.negotiate(root, "report.PDF", b"second").json()
    api.send(negotiated["missing"], b"second")
    _assert_error(api.commit(negotiated["upload_id"]), 409, "name_taken")
    assert api.download(first["id"]).content == b"first"
    assert api.negotiate(root, "other.pdf", b"second").json()["missing"] == []  # the bytes it sent still count


def test_racing_creates_of_one_name_only_one_wins(api):
    from concurrent.futures import ThreadPoolExecutor

    root = api.root()["id"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda n: api.call("POST", "/folders", json={"parent_id": root, "name": n}),
                                ["Same", "same", "SAME", "Same", "sAme", "same"]))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert len(api.call("GET", f"/nodes/{root}/children").json()["items"]) == 1
