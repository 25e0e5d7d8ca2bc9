"""Where an upload is acknowledged, and how soon an at_rest upload is sealed (issue 19), against real stores: two
local directories and the moto S3 stand-in behind the real gateway. Copies are found by reading the stores
themselves; the placement worker runs through the admin API, or (at_rest) as the scheduler's doorbell enqueues it
for a real rq worker process."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.files import BLOCK, blocks_of

pytestmark = pytest.mark.slow


@pytest.fixture
def env(env, tmp_path, s3_endpoint, aws_env):
    """The default store, a second disk and an S3 bucket."""
    bucket = f"pcloud-ingest-{secrets.token_hex(5)}"
    env["PCLOUD_STORES"] = (f'{{"disk2": "file://{tmp_path}/disk2", '
                            f'"s3": "s3://{bucket}?endpoint={s3_endpoint}&region=us-east-1"}}')
    return env


@pytest.fixture
def admin(files_api, make_user, clients, gateway):
    from functions.files import policy, replication, sealing

    for module in (policy, replication, sealing):
        module.ensure_indexes(clients.db)
    return files_api(make_user(admin=True))


def the_store(settings):
    from runtime.clients import clients_for

    return clients_for(settings).store


def raw_holders(settings, address: str) -> list[str]:
    """The stores that hold an object under `address`, asked straight (no fallback, no hash check); a store
    that is down holds nothing we could read."""
    from runtime.store import StoreUnavailable

    store, found = the_store(settings), []
    for name in store.names:
        try:
            if store.backend(name).head(address) is not None:
                found.append(name)
        except StoreUnavailable:
            continue
    return found


def folder_with(api, name: str, **policy) -> dict:
    folder = api.folder(api.root()["id"], name)
    answer = api.call("PUT", f"/nodes/{folder['id']}/policy", json=policy)
    assert answer.status_code == 200, answer.text
    return folder


def negotiate_send_commit(api, folder_id: str, name: str, data: bytes) -> tuple[dict, dict]:
    negotiated = api.negotiate(folder_id, name, data)
    assert negotiated.status_code == 201, negotiated.text
    body = negotiated.json()
    for answer in api.send(body["missing"], data):
        assert answer.status_code in (200, 201, 204), answer.text
    committed = api.commit(body["upload_id"])
    assert committed.status_code == 201, committed.text
    return body, committed.json()


def run_worker(api) -> dict:
    answer = api.call("POST", "/storage/repair")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_folder_naming_stores_gets_its_blocks_acknowledged_on_the_first(admin, settings, s3_endpoint):
    api = admin
    on_disk2 = folder_with(api, "OnDisk2", stores=["disk2"])
    data = secrets.token_bytes(BLOCK) + b"tail" * 500
    hashes = [b["hash"] for b in blocks_of(data)]
    body, node = negotiate_send_commit(api, on_disk2["id"], "a.bin", data)
    assert (body["store"], body["store_fallback"]) == ("disk2", False)
    assert all("store=disk2" in m["url"] for m in body["missing"])
    assert all(raw_holders(settings, h) == ["disk2"] for h in hashes)  # present there at commit, nowhere else
    disk2 = the_store(settings).backend("disk2")
    assert all(disk2.path_for(h).is_file() for h in hashes)
    assert not list((disk2.root / "staging").glob("*/*"))  # claimed out of the upload's staging area

    in_s3 = folder_with(api, "InS3", stores=["s3", "disk2"], replicas=2)
    other = secrets.token_bytes(3000)
    body, _ = negotiate_send_commit(api, in_s3["id"], "b.bin", other)
    assert body["store"] == "s3" and body["missing"][0]["url"].startswith(s3_endpoint)  # the S3 batch signer
    assert raw_holders(settings, blocks_of(other)[0]["hash"]) == ["s3"]

    run_worker(api)  # nothing to move for the first file; the second gets its second copy
    assert all(raw_holders(settings, h) == ["disk2"] for h in hashes)
    assert raw_holders(settings, blocks_of(other)[0]["hash"]) == ["disk2", "s3"]
    assert api.download(node["id"]).content == data
    status = api.call("GET", "/storage").json()
    assert status["blocks"]["ok"] == 3 and status["totals"]["copies"] == 1  # only the second copy was made


def test_with_the_named_store_down_the_upload_falls_back_and_repair_places_it_later(admin, settings, tmp_path):
    api = admin
    folder = folder_with(api, "OnDisk2", stores=["disk2"])
    (tmp_path / "disk2").write_text("this disk is gone")  # the store's directory cannot be made
    data = secrets.token_bytes(5000)
    digest = blocks_of(data)[0]["hash"]
    body, node = negotiate_send_commit(api, folder["id"], "x.bin", data)
    assert (body["store"], body["store_fallback"]) == ("default", True)
    assert raw_holders(settings, digest) == ["default"]
    assert api.download(node["id"]).content == data
    run_worker(api)
    status = api.call("GET", "/storage").json()
    assert status["blocks"]["degraded"] == 1 and status["totals"]["ack_fallbacks"] == 1
    assert 'pcloud_storage_events_total{kind="ack_fallbacks"} 1' in api.http.get(f"{api.base}/metrics",
                                                                                  timeout=10).text

    (tmp_path / "disk2").unlink()  # the disk is back
    assert {s["name"]: s["healthy"] for s in api.call("GET", "/storage").json()["stores"]}["disk2"] is True
    run_worker(api)
    assert raw_holders(settings, digest) == ["disk2"]  # copied where the policy wants it, then trimmed
    assert api.call("GET", "/storage").json()["blocks"]["ok"] == 1
    assert api.download(node["id"]).content == data


@pytest.fixture
def maintenance_worker(env):
    """`python -m runtime.worker maintenance`, the real rq worker process, with this test's environment."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "runtime.worker", "maintenance"], cwd=root,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    yield proc
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def doorbells(clients, settings):
    """The scheduler's loop with only its on-insert jobs (no periodic pass at all), in a thread."""
    from runtime import scheduler
    from runtime.clients import clients_for

    stop = threading.Event()
    thread = threading.Thread(target=scheduler.serve, daemon=True,
                              args=(clients_for(settings), [], scheduler.on_insert_jobs(), stop))
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def test_a_commit_into_an_at_rest_folder_is_sealed_without_waiting_for_the_periodic_pass(
        admin, settings, clients, maintenance_worker, doorbells):
    api = admin
    folder = folder_with(api, "Private", encryption="at_rest")
    data = secrets.token_bytes(BLOCK) + b"diary" * 300
    hashes = [b["hash"] for b in blocks_of(data)]
    node = api.upload(folder["id"], "diary.txt", data)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # until the request is served: sealed, the plaintext gone, counted
        doc = clients.db.nodes.find_one({"_id": node["id"]})
        stats = clients.db.storage_stats.find_one({"_id": "totals"}) or {}
        if doc.get("sealed_rev") == doc.get("content_rev", 1) and stats.get("requested_placements") \
                and not any(raw_holders(settings, h) for h in hashes):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"not sealed: {doc.get('sealed_rev')}, plaintext on "
                             f"{[raw_holders(settings, h) for h in hashes]}, {stats}")
    sealed = [clients.db.sealed_blocks.find_one({"_id": f"{api.user.id}:{h}"})["address"] for h in hashes]
    assert all(raw_holders(settings, a) == ["default"] for a in sealed)
    assert stats["requested_placements"] == 1 and "last_repair_at" not in stats  # no periodic pass ran
    assert clients.db.placement_wakeups.count_documents({}) == 0
    assert api.download(node["id"]).content == data
