"""A person's own Google Drive as a replica store (issue 19), end to end against the Drive v3 + OAuth stand-in:
connect through the real OAuth redirects (Authlib on our side), tokens sealed in the database, a folder policy
naming the drive, the placement worker copying blocks there, reads falling back to it, scrub and repair, a
revoked grant and a disconnect degrading the policy and never the service."""

from __future__ import annotations

import secrets

import pytest
import requests
from bson import BSON

from tests.fixtures.files import BLOCK, blocks_of
from tests.fixtures.gdrive import DRIVE_CLIENT_ID, DRIVE_CLIENT_SECRET
from tests.fixtures.sso import query_of

TIMEOUT = 10


@pytest.fixture
def env(env, fake_drive):
    env.update({"PCLOUD_GDRIVE_CLIENT_ID": DRIVE_CLIENT_ID, "PCLOUD_GDRIVE_CLIENT_SECRET": DRIVE_CLIENT_SECRET,
                "PCLOUD_GDRIVE_AUTHORIZE_URL": fake_drive.authorize_url,
                "PCLOUD_GDRIVE_TOKEN_URL": fake_drive.token_url,
                "PCLOUD_GDRIVE_REVOKE_URL": fake_drive.revoke_url, "PCLOUD_GDRIVE_API_URL": fake_drive.api_url,
                "PCLOUD_GDRIVE_UPLOAD_URL": fake_drive.upload_url, "PCLOUD_HTTP_TIMEOUT_SECONDS": "3"})
    return env


@pytest.fixture
def owner(files_api, make_user, clients, gateway):
    """An admin (so the test can run the worker through the API) with the storage indexes in place."""
    from functions.files import clouds, policy, replication, sealing

    for module in (policy, replication, sealing, clouds):
        module.ensure_indexes(clients.db)
    return files_api(make_user(admin=True))


def authorize(api, fake_drive, email: str, action: str = "approve", portal_cookie: str | None = None,
              **body) -> requests.Response:
    """POST …/connect, then the browser's part: Google's consent form, and its redirect to our callback (in a
    browser signed in to the portal with `portal_cookie`, if given)."""
    started = api.call("POST", "/clouds/google-drive/connect", json=body)
    assert started.status_code == 200, started.text
    url = started.json()["authorize_url"]
    params = query_of(url)
    assert params["code_challenge_method"] == "S256" and params["access_type"] == "offline"
    assert params["scope"] == "https://www.googleapis.com/auth/drive.file"
    browser = requests.Session()  # no PCloud credentials: the callback knows the person by the state alone
    if portal_cookie is not None:
        browser.cookies.set("pcloud_sso", portal_cookie)
    assert browser.get(url, timeout=TIMEOUT).status_code == 200
    consent = browser.post(fake_drive.authorize_url, data={**params, "email": email, "action": action},
                           allow_redirects=False, timeout=TIMEOUT)
    assert consent.status_code == 302, consent.text
    return browser.get(consent.headers["Location"], allow_redirects=False, timeout=TIMEOUT)


def connect(api, fake_drive, email: str | None = None) -> dict:
    answer = authorize(api, fake_drive, email or f"{secrets.token_hex(4)}@gmail.test")
    assert answer.status_code == 200, answer.text
    return answer.json()


def run_worker(api) -> dict:
    answer = api.call("POST", "/storage/repair")
    assert answer.status_code == 200, answer.text
    return answer.json()


def the_store(settings):
    from runtime.clients import clients_for

    return clients_for(settings).store


def test_connect_list_reconnect_and_disconnect(owner, files_api, fake_drive, clients):
    api = owner
    email = "ada@gmail.test"
    cloud = connect(api, fake_drive, email)
    assert cloud["provider"] == "google-drive" and cloud["account"] == email and cloud["state"] == "connected"
    assert cloud["store"] == f"gdrive:{cloud['id']}"
    listed = api.call("GET", "/clouds").json()["clouds"]
    assert [c["id"] for c in listed] == [cloud["id"]]

    raw = clients.db.cloud_connections.find_one({"_id": cloud["id"]})
    refresh_tokens = [t for t, g in fake_drive.refresh_tokens.items() if g["email"] == email]
    access_tokens = [t for t, g in fake_drive.access_tokens.items() if g["email"] == email]
    assert refresh_tokens and access_tokens
    stored = BSON.encode(raw)
    for secret in refresh_tokens + access_tokens:  # sealed, never in plain
        assert secret.encode() not in stored
    assert isinstance(raw["token"], bytes) and "refresh_token" not in raw
    assert [f["name"] for f in fake_drive.files(email)] == ["PCloud blocks"]  # the app folder, made at connect

    again = connect(api, fake_drive, email)  # the same Google account again: the same connection, new tokens
    assert again["id"] == cloud["id"]
    assert len(api.call("GET", "/clouds").json()["clouds"]) == 1

    other = files_api()
    assert other.call("GET", "/clouds").json()["clouds"] == []
    assert other.call("DELETE", f"/clouds/{cloud['id']}").status_code == 404
    assert api.call("DELETE", f"/clouds/{cloud['id']}").status_code == 204
    assert api.call("GET", "/clouds").json()["clouds"] == []
    assert not [t for t, g in fake_drive.refresh_tokens.items() if g["email"] == email]  # revoked at Google
    assert api.call("DELETE", f"/clouds/{cloud['id']}").status_code == 404


def test_a_connect_link_completed_in_someone_elses_signed_in_browser_connects_nothing(owner, fake_drive,
                                                                                       make_portal_session):
    """Login CSRF: the attacker starts a link on their own account and gets a victim, signed in to PCloud, to
    consent with the victim's Google account. The callback sees the victim's session and exchanges nothing."""
    victim = make_portal_session("Victim")
    lured = authorize(owner, fake_drive, "victim@gmail.test", portal_cookie=victim.cookie)
    assert lured.status_code == 403 and lured.json()["error"]["code"] == "account_mismatch"
    assert owner.call("GET", "/clouds").json()["clouds"] == []
    assert not [t for t, g in fake_drive.access_tokens.items() if g["email"] == "victim@gmail.test"]  # never swapped

    mine = make_portal_session(user=owner.user)  # the owner's own signed-in browser: connects as always
    answer = authorize(owner, fake_drive, "ada2@gmail.test", portal_cookie=mine.cookie)
    assert answer.status_code == 200 and answer.json()["account"] == "ada2@gmail.test"


def test_bad_connects_are_clear_errors(owner, fake_drive, gateway):
    api = owner
    denied = authorize(api, fake_drive, "x@gmail.test", action="deny", return_to="/portal/settings")
    assert denied.status_code == 302
    assert denied.headers["Location"].startswith(f"{gateway.url}/portal/settings?")
    assert query_of(denied.headers["Location"]) == {"cloud_error": "access_denied"}

    started = api.call("POST", "/clouds/google-drive/connect", json={}).json()
    forged = requests.get(f"{gateway.url}/files/v1/clouds/google-drive/callback",
                          params={"code": "4/made-up", "state": "not-a-state"}, timeout=TIMEOUT)
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_state"
    state = query_of(started["authorize_url"])["state"]
    bad_code = requests.get(f"{gateway.url}/files/v1/clouds/google-drive/callback",
                            params={"code": "4/made-up", "state": state}, timeout=TIMEOUT)
    assert bad_code.status_code == 400 and bad_code.json()["error"]["code"] == "connect_failed"
    replay = requests.get(f"{gateway.url}/files/v1/clouds/google-drive/callback",
                          params={"code": "4/made-up", "state": state}, timeout=TIMEOUT)
    assert replay.json()["error"]["code"] == "invalid_state"  # a state works once

    foreign = api.call("POST", "/clouds/google-drive/connect", json={"return_to": "https://evil.test/x"})
    assert foreign.status_code == 400 and foreign.json()["error"]["code"] == "invalid_return_to"
    assert api.call("GET", "/clouds").json()["clouds"] == []
    assert requests.get(f"{gateway.url}/files/v1/clouds", timeout=TIMEOUT).status_code == 401


def test_a_policy_names_only_the_owners_connected_drive(owner, files_api, fake_drive):
    api = owner
    cloud = connect(api, fake_drive)
    folder = api.folder(api.root()["id"], "Mirrored")
    ok = api.call("PUT", f"/nodes/{folder['id']}/policy", json={"stores": ["default", cloud["store"]]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["effective"]["stores"] == ["default", cloud["store"]]
    assert cloud["store"] in ok.json()["stores_available"] and ok.json()["store_problems"] == []
    only_drive = api.call("PUT", f"/nodes/{folder['id']}/policy", json={"replicas": 2, "stores": [cloud["store"]]})
    assert only_drive.status_code == 400 and only_drive.json()["error"]["code"] == "too_many_replicas"

    other = files_api()
    theirs = other.folder(other.root()["id"], "Theirs")
    refused = other.call("PUT", f"/nodes/{theirs['id']}/policy", json={"stores": ["default", cloud["store"]]})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_store"
    assert cloud["store"] not in refused.json()["error"]["details"]["known"]
    made_up = api.call("PUT", f"/nodes/{folder['id']}/policy", json={"stores": ["gdrive:" + "0" * 24]})
    assert made_up.status_code == 400 and made_up.json()["error"]["code"] == "unknown_store"


def test_the_worker_mirrors_to_the_drive_reads_fall_back_and_repair_works_both_ways(owner, fake_drive, settings,
                                                                                   clients):
    api = owner
    email = "mirror@gmail.test"
    cloud = connect(api, fake_drive, email)
    folder = api.folder(api.root()["id"], "Photos")
    assert api.call("PUT", f"/nodes/{folder['id']}/policy",
                    json={"replicas": 1, "stores": ["default", cloud["store"]]}).status_code == 200
    data = secrets.token_bytes(BLOCK + 5000)
    node = api.upload(folder["id"], "trip.jpg", data)
    hashes = [b["hash"] for b in blocks_of(data)]
    chunks = [data[:BLOCK], data[BLOCK:]]
    run_worker(api)
    for digest, chunk in zip(hashes, chunks, strict=True):
        assert fake_drive.raw(email, digest) == chunk  # a copy of each block in the person's drive
    status = api.call("GET", "/storage").json()
    assert status["blocks"]["ok"] == 2 and status["clouds"]["connected"] == 1

    store = the_store(settings)
    store.backend("default").path_for(hashes[0]).unlink()  # the server's copy of block 0 lost
    fake_drive.overwrite(email, hashes[1], b"\0" * len(chunks[1]))  # bit rot in the drive's copy of block 1
    fake_drive.expire_access_tokens()  # and the access token expired meanwhile: refreshed on the way
    before = clients.db.cloud_connections.find_one({"_id": cloud["id"]})["token"]
    got = api.download(node["id"])
    assert got.status_code == 200 and got.content == data  # block 0 read from the drive, block 1 from the server
    after = clients.db.cloud_connections.find_one({"_id": cloud["id"]})
    assert after["token"] != before and after.get("refreshed_at")  # the refreshed token was kept, sealed
    scrubbed = api.call("POST", "/storage/scrub").json()
    assert scrubbed["missing"] == 1 and scrubbed["corrupt"] == 1
    run_worker(api)
    assert store.backend("default").path_for(hashes[0]).read_bytes() == chunks[0]  # repaired from the drive
    assert fake_drive.raw(email, hashes[1]) == chunks[1]  # put back from the server's copy
    assert api.call("GET", "/storage").json()["blocks"]["ok"] == 2
    assert api.download(node["id"]).content == data

    assert api.call("PUT", f"/nodes/{folder['id']}/policy", json={"stores": ["default"]}).status_code == 200
    run_worker(api)  # the policy no longer names the drive: its copies are trimmed
    assert [f["name"] for f in fake_drive.files(email)] == ["PCloud blocks"]
    assert api.download(node["id"]).content == data


def test_a_revoked_drive_and_a_disconnected_one_degrade_the_policy_not_the_service(owner, fake_drive):
    api = owner
    email = "revoker@gmail.test"
    cloud = connect(api, fake_drive, email)
    folder = api.folder(api.root()["id"], "Docs")
    assert api.call("PUT", f"/nodes/{folder['id']}/policy",
                    json={"stores": ["default", cloud["store"]]}).status_code == 200
    first = api.upload(folder["id"], "a.txt", b"first file " * 1000)
    run_worker(api)
    assert fake_drive.raw(email, blocks_of(b"first file " * 1000)[0]["hash"])

    fake_drive.revoke_all(email)  # the person removed PCloud's access in their Google account
    fake_drive.expire_access_tokens()
    second = api.upload(folder["id"], "b.txt", b"second file " * 1000)  # uploads go on
    run_worker(api)
    assert api.download(second["id"]).content == b"second file " * 1000
    assert api.download(first["id"]).content == b"first file " * 1000
    policy = api.call("GET", f"/nodes/{folder['id']}/policy").json()
    assert policy["store_problems"] == [{"store": cloud["store"], "state": "revoked"}]
    listed = api.call("GET", "/clouds").json()["clouds"]
    assert listed[0]["state"] == "revoked" and "refused" in listed[0]["last_error"]
    status = api.call("GET", "/storage").json()
    assert status["blocks"]["degraded"] == 2 and status["clouds"]["revoked"] == 1
    assert api.http.get(f"{api.base}/readyz", timeout=TIMEOUT).status_code == 200

    again = connect(api, fake_drive, email)  # reconnecting brings the same store back
    assert again["id"] == cloud["id"] and again["state"] == "connected"
    run_worker(api)
    assert fake_drive.raw(email, blocks_of(b"second file " * 1000)[0]["hash"])
    assert api.call("GET", "/storage").json()["blocks"]["degraded"] == 0

    assert api.call("DELETE", f"/clouds/{cloud['id']}").status_code == 204
    third = api.upload(folder["id"], "c.txt", b"third file " * 1000)
    run_worker(api)
    assert api.download(third["id"]).content == b"third file " * 1000
    policy = api.call("GET", f"/nodes/{folder['id']}/policy").json()
    assert policy["store_problems"] == [{"store": cloud["store"], "state": "disconnected"}]
    assert api.call("GET", "/storage").json()["blocks"]["degraded"] == 3
    elsewhere = api.folder(api.root()["id"], "Elsewhere")
    gone = api.call("PUT", f"/nodes/{elsewhere['id']}/policy", json={"stores": ["default", cloud["store"]]})
    assert gone.status_code == 400 and gone.json()["error"]["code"] == "unknown_store"


def test_a_drive_that_fails_is_reported_unavailable_and_uploads_go_on(owner, fake_drive):
    api = owner
    cloud = connect(api, fake_drive, "flaky@gmail.test")
    folder = api.folder(api.root()["id"], "Flaky")
    assert api.call("PUT", f"/nodes/{folder['id']}/policy",
                    json={"stores": ["default", cloud["store"]]}).status_code == 200
    fake_drive.fail_always(503)
    node = api.upload(folder["id"], "f.txt", b"while Google is down " * 500)
    run_worker(api)
    assert api.download(node["id"]).content == b"while Google is down " * 500
    assert api.call("GET", "/clouds").json()["clouds"][0]["state"] == "unavailable"
    policy = api.call("GET", f"/nodes/{folder['id']}/policy").json()
    assert policy["store_problems"] == [{"store": cloud["store"], "state": "unavailable"}]
    assert api.call("GET", "/storage").json()["blocks"]["degraded"] == 1


def test_an_encrypted_folder_sends_only_ciphertext_to_the_drive(owner, fake_drive, clients):
    api = owner
    email = "private@gmail.test"
    cloud = connect(api, fake_drive, email)
    folder = api.folder(api.root()["id"], "Private")
    assert api.call("PUT", f"/nodes/{folder['id']}/policy",
                    json={"encryption": "at_rest", "stores": ["default", cloud["store"]]}).status_code == 200
    data = b"my diary, not Google's " * 2000
    node = api.upload(folder["id"], "diary.txt", data)
    run_worker(api)
    plain_hash = blocks_of(data)[0]["hash"]
    address = clients.db.sealed_blocks.find_one({"_id": f"{api.user.id}:{plain_hash}"})["address"]
    names = [f["name"] for f in fake_drive.files(email)]
    assert plain_hash not in names and address in names
    raw = fake_drive.raw(email, address)
    assert raw.startswith(b"PCS1") and b"diary" not in raw and len(raw) == len(data) + 32
    assert api.download(node["id"]).content == data


@pytest.fixture
def no_drive_client(env):
    for key in ("PCLOUD_GDRIVE_CLIENT_ID", "PCLOUD_GDRIVE_CLIENT_SECRET"):
        env.pop(key)


def test_without_a_drive_client_connecting_is_a_clear_501(no_drive_client, owner, gateway):
    answer = owner.call("POST", "/clouds/google-drive/connect")
    assert answer.status_code == 501 and answer.json()["error"]["code"] == "cloud_not_configured"
    callback = requests.get(f"{gateway.url}/files/v1/clouds/google-drive/callback", params={"state": "x"},
                            timeout=TIMEOUT)
    assert callback.status_code == 501
    assert owner.call("GET", "/clouds").json() == {"clouds": []}
