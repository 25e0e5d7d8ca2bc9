"""Replica policy against real stores (issue 19): two local directories and the moto S3 stand-in behind the real
gateway. Copies are counted by looking into the stores themselves; the placement worker runs through the admin
API (the same function the periodic job runs)."""

from __future__ import annotations

import hashlib
import secrets
import socket

import pytest

from tests.fixtures.files import BLOCK, blocks_of

pytestmark = pytest.mark.slow


@pytest.fixture
def env(env, tmp_path, s3_endpoint, aws_env):
    """The default store, a second disk and an S3 bucket."""
    bucket = f"pcloud-replica-{secrets.token_hex(5)}"
    env["PCLOUD_STORES"] = (f'{{"disk2": "file://{tmp_path}/disk2", '
                            f'"s3": "s3://{bucket}?endpoint={s3_endpoint}&region=us-east-1"}}')
    return env


@pytest.fixture
def dead_store(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env["PCLOUD_STORES"] = env["PCLOUD_STORES"][:-1] + f', "gone": "s3://nowhere?endpoint=http://127.0.0.1:{port}"}}'
    env["PCLOUD_HTTP_TIMEOUT_SECONDS"] = "1"


@pytest.fixture
def stack(files_api, make_user, clients, gateway):
    from functions.files import policy, replication

    policy.ensure_indexes(clients.db)
    replication.ensure_indexes(clients.db)
    admin = files_api(make_user(admin=True))
    return admin


def store_of(settings):
    from runtime.clients import clients_for

    return clients_for(settings).store


def copies(settings, digest: str) -> list[str]:
    store = store_of(settings)
    return [name for name in store.names if store.healthy(name) and store.has(name, digest)]


def run_worker(api) -> dict:
    answer = api.call("POST", "/storage/repair")
    assert answer.status_code == 200, answer.text
    return answer.json()


def set_policy(api, node_id: str, **fields):
    return api.call("PUT", f"/nodes/{node_id}/policy", json=fields)


def payload(extra: int = 1000) -> bytes:
    return secrets.token_bytes(BLOCK + extra)


def test_two_copies_survive_a_corrupt_and_a_lost_replica(stack, settings):
    api = stack
    root = api.root()
    folder = api.folder(root["id"], "Important")
    answer = set_policy(api, folder["id"], replicas=2, stores=["default", "disk2"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["effective"] == {"replicas": 2, "stores": ["default", "disk2"], "encryption": "none"}
    data = payload()
    node = api.upload(folder["id"], "tax.pdf", data)
    hashes = [b["hash"] for b in blocks_of(data)]
    assert all(copies(settings, h) == ["default"] for h in hashes)  # acknowledged on the first copy
    run_worker(api)
    assert all(copies(settings, h) == ["default", "disk2"] for h in hashes)

    store = store_of(settings)
    first = store.backend("default").path_for(hashes[0])
    first.write_bytes(b"\0" * BLOCK)  # bit rot on the default disk
    got = api.download(node["id"])
    assert got.status_code == 200 and got.content == data  # served from the good copy, never the rotten one
    run_worker(api)
    assert hashlib.sha256(first.read_bytes()).hexdigest() == hashes[0]  # repaired from disk2

    store.backend("disk2").path_for(hashes[1]).unlink()  # a replica lost
    assert api.download(node["id"]).content == data
    scrubbed = api.call("POST", "/storage/scrub").json()
    assert scrubbed["missing"] == 1 and scrubbed["corrupt"] == 0
    run_worker(api)
    assert copies(settings, hashes[1]) == ["default", "disk2"]

    status = api.call("GET", "/storage").json()
    assert status["blocks"]["ok"] == 2 and status["blocks"]["degraded"] == 0
    assert status["totals"]["copies"] >= 4 and status["totals"]["scrub_missing"] == 1
    metrics = api.http.get(f"{api.base}/metrics", timeout=10).text
    assert 'pcloud_storage_blocks{state="ok"} 2' in metrics
    assert 'pcloud_storage_store_up{store="s3"} 1' in metrics


def test_corrupt_everywhere_is_a_clear_error_not_bad_bytes(stack, settings):
    api = stack
    data = b"precious" * 1000
    node = api.upload(api.root()["id"], "only.txt", data)
    digest = blocks_of(data)[0]["hash"]
    store_of(settings).backend("default").path_for(digest).write_bytes(b"X" * len(data))
    got = api.download(node["id"])
    assert got.status_code == 502 and got.json()["error"]["code"] == "block_corrupt"


def test_policy_changes_converge_both_ways_and_are_inherited(stack, settings):
    api = stack
    root = api.root()
    photos = api.folder(root["id"], "Photos")
    inner = api.folder(photos["id"], "2026")
    data = b"a photo" * 5000
    api.upload(inner["id"], "one.jpg", data)
    digest = blocks_of(data)[0]["hash"]
    run_worker(api)
    assert copies(settings, digest) == ["default"]

    assert set_policy(api, photos["id"], replicas=3).status_code == 200
    seen = api.call("GET", f"/nodes/{inner['id']}/policy").json()
    assert seen["effective"]["replicas"] == 3 and seen["inherited_from"]["replicas"] == photos["id"]
    run_worker(api)
    assert copies(settings, digest) == ["default", "disk2", "s3"]

    assert set_policy(api, photos["id"], replicas=1, stores=["s3"]).status_code == 200
    run_worker(api)
    assert copies(settings, digest) == ["s3"]  # moved: copied where wanted, then trimmed elsewhere
    assert api.download(api.call("GET", "/path", params={"path": "/Photos/2026/one.jpg"}).json()["id"]
                        ).content == data

    assert set_policy(api, photos["id"]).status_code == 200  # cleared: back to the default (1, any store)
    run_worker(api)
    assert len(copies(settings, digest)) == 1


def test_bad_policies_are_refused_clearly(stack, files_api):
    api = stack
    root = api.root()
    folder = api.folder(root["id"], "F")
    unknown = set_policy(api, folder["id"], replicas=1, stores=["disk2", "tape"])
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_store"
    assert unknown.json()["error"]["details"]["known"] == ["default", "disk2", "s3"]
    too_many = set_policy(api, folder["id"], replicas=4)
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "too_many_replicas"
    narrow = set_policy(api, folder["id"], replicas=2, stores=["disk2"])
    assert narrow.status_code == 400 and narrow.json()["error"]["code"] == "too_many_replicas"
    for body in ({"replicas": 0}, {"replicas": "2"}, {"encryption": "rot13"}, {"stores": []}):
        bad = set_policy(api, folder["id"], **body)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_policy", (body, bad.text)
    assert set_policy(api, folder["id"], color="red").json()["error"]["code"] == "invalid_request"
    file_node = api.upload(folder["id"], "x.txt", b"x")
    assert set_policy(api, file_node["id"], replicas=2).status_code == 409
    other = files_api()
    assert set_policy(other, folder["id"], replicas=2).status_code == 404
    assert other.call("GET", f"/nodes/{folder['id']}/policy").status_code == 404
    assert other.call("GET", "/storage").status_code == 403  # the admin view is for admins


def test_a_store_that_is_gone_degrades_the_policy_not_the_service(dead_store, stack, settings):
    api = stack
    folder = api.folder(api.root()["id"], "Both")
    assert set_policy(api, folder["id"], replicas=2, stores=["gone", "default"]).status_code == 200
    data = b"keep me" * 3000
    node = api.upload(folder["id"], "k.txt", data)
    assert api.download(node["id"]).content == data
    run_worker(api)
    status = api.call("GET", "/storage").json()
    assert status["blocks"]["degraded"] == 1
    assert {s["name"]: s["healthy"] for s in status["stores"]}["gone"] is False
    assert api.http.get(f"{api.base}/readyz", timeout=10).status_code == 200
    assert api.download(node["id"]).content == data
