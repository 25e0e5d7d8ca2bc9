"""Folders encrypted at rest (issue 19), against real stores: the raw objects are ciphertext, downloads
round-trip, dedup stays within a user, the KEK rotates without a block rewritten, and the choice can change."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from tests.fixtures.files import BLOCK, blocks_of

pytestmark = pytest.mark.slow


@pytest.fixture
def env(env, tmp_path, s3_endpoint, aws_env):
    env["PCLOUD_STORES"] = (f'{{"disk2": "file://{tmp_path}/disk2", '
                            f'"s3": "s3://pcloud-enc-{secrets.token_hex(5)}?endpoint={s3_endpoint}&region=us-east-1"}}')
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


def raw_objects(settings, address: str) -> dict[str, bytes]:
    """Whatever each store holds under an address, read straight from the backend (no key, no checks)."""
    store = the_store(settings)
    found = {}
    for name in store.names:
        try:
            found[name] = store.backend(name).get(address)
        except Exception as exc:  # noqa: BLE001 - absent on that store
            assert getattr(exc, "code", "") == "blob_not_found", exc
    return found


def run_worker(api) -> dict:
    answer = api.call("POST", "/storage/repair")
    assert answer.status_code == 200, answer.text
    return answer.json()


def encrypted_folder(api, name: str, **extra) -> dict:
    folder = api.folder(api.root()["id"], name)
    answer = api.call("PUT", f"/nodes/{folder['id']}/policy", json={"encryption": "at_rest", **extra})
    assert answer.status_code == 200, answer.text
    return folder


def sealed_address(clients, owner: str, plain_hash: str) -> str:
    return clients.db.sealed_blocks.find_one({"_id": f"{owner}:{plain_hash}"})["address"]


def test_blocks_in_an_encrypted_folder_are_ciphertext_in_every_store(admin, settings, clients):
    api = admin
    folder = encrypted_folder(api, "Private", replicas=2)
    data = secrets.token_bytes(BLOCK) + b"the secret tail " * 100
    node = api.upload(folder["id"], "diary.txt", data)
    hashes = [b["hash"] for b in blocks_of(data)]
    run_worker(api)
    for index, plain_hash in enumerate(hashes):
        assert raw_objects(settings, plain_hash) == {}  # no store holds the plaintext block any more
        address = sealed_address(clients, api.user.id, plain_hash)
        held = raw_objects(settings, address)
        assert sorted(held) == ["default", "disk2"]  # two copies, as the policy says
        plain = data[index * BLOCK:(index + 1) * BLOCK]
        for raw in held.values():
            assert hashlib.sha256(raw).hexdigest() == address  # content-addressed: scrubbable without the key
            assert raw != plain and plain[-64:] not in raw and len(raw) == len(plain) + 32
    assert api.download(node["id"]).content == data
    part = api.download(node["id"], headers={"Range": f"bytes={BLOCK - 5}-{BLOCK + 9}"})
    assert part.status_code == 206 and part.content == data[BLOCK - 5:BLOCK + 10]
    preview_free = api.call("GET", f"/nodes/{node['id']}")
    assert preview_free.json()["content_hash"] == node["content_hash"]  # the contract's node is unchanged


def test_dedup_stays_within_a_user_and_a_plain_copy_elsewhere_is_kept(admin, files_api, settings, clients):
    api = admin
    other = files_api()
    data = b"shared family photo " * 4000
    plain_hash = blocks_of(data)[0]["hash"]
    mine = encrypted_folder(api, "Mine")
    api.upload(mine["id"], "a.jpg", data)
    api.upload(mine["id"], "b.jpg", data)  # the same block twice: one sealed copy
    theirs_plain = other.upload(other.root()["id"], "plain.jpg", data)
    theirs = encrypted_folder(other, "Theirs")
    other.upload(theirs["id"], "c.jpg", data)
    run_worker(api)
    assert clients.db.sealed_blocks.count_documents({"hash": plain_hash}) == 2  # one per user, not per file
    assert sealed_address(clients, api.user.id, plain_hash) != sealed_address(clients, other.user.id, plain_hash)
    assert raw_objects(settings, plain_hash)  # the other user's plain file still has its plaintext block
    assert other.download(theirs_plain["id"]).content == data


def test_rotating_the_key_rewrites_no_block(admin, settings, clients):
    api = admin
    folder = encrypted_folder(api, "Vault")
    data = b"rotate me " * 3000
    node = api.upload(folder["id"], "v.txt", data)
    run_worker(api)
    address = sealed_address(clients, api.user.id, blocks_of(data)[0]["hash"])
    before = raw_objects(settings, address)
    wrapped = clients.db.user_keys.find_one({"_id": api.user.id})
    rotated = api.call("POST", "/storage/keys/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["rewrapped"] >= 1
    after = clients.db.user_keys.find_one({"_id": api.user.id})
    assert after["kek"] == wrapped["kek"] + 1 and after["wrapped"] != wrapped["wrapped"]
    assert raw_objects(settings, address) == before  # the same ciphertext: nothing re-encrypted
    from functions.files import storage
    from runtime.clients import clients_for

    storage.keyring(clients_for(settings))._cache.clear()  # another process would start with no cached key
    assert api.download(node["id"]).content == data


def test_changing_the_choice_converges_both_ways(admin, settings, clients):
    api = admin
    folder = api.folder(api.root()["id"], "Later")
    data = b"first plain, then sealed, then plain " * 2000
    node = api.upload(folder["id"], "x.txt", data)
    plain_hash = blocks_of(data)[0]["hash"]
    run_worker(api)
    assert raw_objects(settings, plain_hash)
    assert api.call("PUT", f"/nodes/{folder['id']}/policy", json={"encryption": "at_rest"}).status_code == 200
    run_worker(api)
    assert raw_objects(settings, plain_hash) == {}
    address = sealed_address(clients, api.user.id, plain_hash)
    assert raw_objects(settings, address)
    assert api.download(node["id"]).content == data
    assert api.call("PUT", f"/nodes/{folder['id']}/policy", json={"encryption": "none"}).status_code == 200
    run_worker(api)
    assert raw_objects(settings, plain_hash)  # plaintext back
    assert raw_objects(settings, address) == {}  # and the sealed copy gone once the plaintext was
    assert api.download(node["id"]).content == data


def test_a_tampered_sealed_copy_is_never_served(admin, settings, clients):
    api = admin
    folder = encrypted_folder(api, "Tamper")
    data = b"do not alter " * 3000
    node = api.upload(folder["id"], "t.txt", data)
    run_worker(api)
    address = sealed_address(clients, api.user.id, blocks_of(data)[0]["hash"])
    path = the_store(settings).backend("default").path_for(address)
    raw = bytearray(path.read_bytes())
    raw[40] ^= 1
    path.write_bytes(bytes(raw))
    got = api.download(node["id"])
    assert got.status_code == 502 and got.json()["error"]["code"] == "block_corrupt"  # a clear error, no bytes
    assert data[:20] not in got.content
