"""Trash purge, upload expiry and block GC — including GC racing a commit — on both BlobStore backends."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta

import pytest

from functions.files import gc, uploads
from runtime.errors import ApiError
from runtime.ids import utcnow
from runtime.mongo import transaction

pytestmark = pytest.mark.parametrize("store_backend", ["local", "s3"], indirect=True)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_purge_then_gc_removes_the_bytes_and_the_proof_of_possession(files_api, clients, settings):
    api = files_api()
    root = api.root()
    data, shared = os.urandom(500), os.urandom(600)
    doomed = api.upload(root["id"], "doomed", data)
    keeper = api.upload(root["id"], "keeper", shared)
    twin = api.upload(root["id"], "twin", shared)
    api.call("DELETE", f"/nodes/{doomed['id']}")
    api.call("DELETE", f"/nodes/{twin['id']}")
    later = utcnow() + timedelta(days=settings.trash_days, minutes=1)
    assert gc.purge_trash(clients.db, clients.mongo, settings.trash_days, now=utcnow()) == 0
    assert gc.purge_trash(clients.db, clients.mongo, settings.trash_days, now=later) == 2
    assert api.call("GET", f"/nodes/{doomed['id']}").status_code == 404
    tombstone = clients.db.nodes.find_one({"_id": doomed["id"]})
    assert tombstone["purged"] is True and tombstone["seq"] > doomed["rev"]
    assert clients.db.blocks.find_one({"_id": _sha(data)})["refs"] == 0
    assert clients.db.blocks.find_one({"_id": _sha(shared)})["refs"] == 1  # keeper still holds it

    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=later) == 0  # within the grace
    collected = gc.collect_blocks(clients.db, clients.mongo, clients.store, now=later + gc.BLOCK_GRACE * 2)
    assert collected == 1
    assert clients.store.head(_sha(data)) is None
    assert clients.db.blocks.find_one({"_id": _sha(data)}) is None
    assert clients.db.block_owners.count_documents({"hash": _sha(data)}) == 0
    assert clients.store.head(_sha(shared)) == 600
    assert api.download(keeper["id"]).content == shared
    again = api.negotiate(root["id"], "again", data).json()
    assert [m["hash"] for m in again["missing"]] == [_sha(data)]  # the bytes are gone: send them again


def test_uncommitted_uploads_expire_and_their_blocks_are_collected(files_api, clients):
    api = files_api()
    data = os.urandom(700)
    negotiated = api.negotiate(api.root()["id"], "never", data).json()
    api.send(negotiated["missing"], data)
    assert clients.store.head(_sha(data)) is None  # staged for this upload until a commit claims it
    soon = utcnow() + timedelta(hours=1)
    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=soon, grace=timedelta(0)) == 0
    late = utcnow() + uploads.UPLOAD_TTL + timedelta(minutes=1)
    assert gc.expire_uploads(clients.db, now=late, store=clients.store) == 1
    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=late + gc.BLOCK_GRACE) == 1
    assert clients.store.head(_sha(data)) is None
    assert clients.store.claim(negotiated["upload_id"], _sha(data), 700) is False  # the staged bytes are gone
    expired = api.commit(negotiated["upload_id"])
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "upload_expired"


def test_an_open_upload_protects_unreferenced_blocks_from_gc(files_api, clients):
    api = files_api()
    root = api.root()
    data = os.urandom(800)
    old = api.upload(root["id"], "old", data)
    api.call("DELETE", f"/nodes/{old['id']}")
    gc.purge_trash(clients.db, clients.mongo, 0, now=utcnow() + timedelta(seconds=1))
    negotiated = api.negotiate(root["id"], "new", data).json()
    assert negotiated["missing"] == []  # this user stored it before, and it is still there
    far = utcnow() + timedelta(hours=5)
    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=far, grace=timedelta(0)) == 0
    committed = api.commit(negotiated["upload_id"])
    assert committed.status_code == 201
    assert api.download(committed.json()["id"]).content == data


def _orphan(clients, api, data: bytes) -> tuple[str, dict]:
    """A block this user owns with no references left (its file purged): what GC is after."""
    root = api.root()
    node = api.upload(root["id"], f"orphan-{_sha(data)[:8]}", data)
    api.call("DELETE", f"/nodes/{node['id']}")
    gc.purge_trash(clients.db, clients.mongo, 0, now=utcnow() + timedelta(seconds=1))
    return root["id"], {"_id": "in-memory", "blocks": [_sha(data)], "size": len(data), "mtime": None}


def test_gc_cannot_mark_a_block_while_a_commit_holding_it_is_in_flight(files_api, clients):
    api = files_api()
    data = os.urandom(900)
    root_id, upload = _orphan(clients, api, data)  # an upload GC does not know about: only the conflict protects
    far = utcnow() + timedelta(hours=5)
    with clients.mongo.start_session() as session:
        session.start_transaction()
        uploads.apply_content(clients.db, api.user.id, upload, parent_id=root_id, name="racer", check_base=False,
                              session=session)
        # GC's write on the block conflicts with the commit's: it marks nothing and leaves it for the next run
        assert gc.mark_collectable(clients.db, clients.mongo, now=far, grace=timedelta(0)) == []
        session.commit_transaction()
    assert gc.collect_blocks(clients.db, clients.mongo, clients.store, now=far, grace=timedelta(0)) == 0
    assert clients.db.blocks.find_one({"_id": _sha(data)})["refs"] == 1
    assert clients.store.head(_sha(data)) == 900


def test_a_commit_after_gc_marked_the_block_is_blocks_missing(files_api, clients):
    api = files_api()
    data = os.urandom(1000)
    root_id, upload = _orphan(clients, api, data)
    far = utcnow() + timedelta(hours=5)
    assert uploads.verify_blocks(clients.db, clients.store, api.user.id, upload) == []  # before GC: fine
    assert gc.mark_collectable(clients.db, clients.mongo, now=far, grace=timedelta(0)) == [_sha(data)]
    with pytest.raises(ApiError) as caught:
        transaction(clients.mongo, lambda s: uploads.commit_into(clients.db, clients.store, api.user.id, upload,
                                                                 parent_id=root_id, name="late", session=s))
    assert caught.value.code == "blocks_missing" and caught.value.details["missing"] == [_sha(data)]
    gc.sweep(clients.db, clients.store)
    assert clients.db.nodes.count_documents({"owner": api.user.id, "name": "late"}) == 0


def test_commit_racing_gc_never_leaves_a_node_without_its_bytes(files_api, clients):
    """Even rounds commit over HTTP (the open upload protects its blocks); odd rounds commit an upload GC cannot
    see (as the ops referee may), where only the write conflict on the block documents decides."""
    api = files_api()
    far = utcnow() + timedelta(hours=5)
    outcomes = []
    for round_ in range(4):
        data = os.urandom(300 + round_)
        root_id, hidden = _orphan(clients, api, data)
        negotiated = api.negotiate(root_id, f"race-{round_}", data).json() if round_ % 2 == 0 else {"upload_id": ""}
        start = threading.Barrier(2)
        result: dict = {}

        def commit(round_=round_, upload_id=negotiated["upload_id"], hidden=hidden, root_id=root_id, result=result,
                   start=start):
            start.wait()
            if round_ % 2 == 0:
                response = api.commit(upload_id)
                result["commit"] = (response.status_code, response.json())
                return
            try:
                node = transaction(clients.mongo, lambda s: uploads.commit_into(
                    clients.db, clients.store, api.user.id, hidden, parent_id=root_id, name=f"hidden-{round_}",
                    session=s))
                result["commit"] = (201, {"id": node["_id"]})
            except ApiError as exc:
                result["commit"] = (exc.status, exc.body())

        def collect(result=result, start=start):
            start.wait()
            result["gc"] = gc.collect_blocks(clients.db, clients.mongo, clients.store, now=far, grace=timedelta(0))

        threads = [threading.Thread(target=commit), threading.Thread(target=collect)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        status, body = result["commit"]
        if status == 201:
            assert clients.store.head(_sha(data)) == len(data)
            assert api.download(body["id"]).content == data
            assert clients.db.blocks.find_one({"_id": _sha(data)})["refs"] == 1
        else:
            assert status == 409 and body["error"]["code"] == "blocks_missing"
            assert clients.db.blocks.find_one({"_id": _sha(data), "state": {"$ne": "deleting"}}) is None
        outcomes.append(status)
    assert set(outcomes) <= {201, 409}
    assert all(status == 201 for status in outcomes[::2])  # an open upload always wins
    for node in clients.db.nodes.find({"owner": api.user.id, "kind": "file", "purged": {"$ne": True}}):
        for digest in node["blocks"]:
            assert clients.store.head(digest) is not None

