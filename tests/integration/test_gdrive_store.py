"""DriveBlobStore beyond the shared contract (tests/contract/test_blobstore.py): token refresh through Authlib,
a revoked grant, Drive failures mapped to StoreUnavailable, bytes kept where the stand-in shows them."""

from __future__ import annotations

import hashlib

import pytest

from runtime.store import BlobNotFound, StoreUnavailable
from runtime.store.gdrive import FOLDER_NAME, DriveAccessRevoked, PresignUnsupported


def block(text: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(text).hexdigest(), text


def test_blocks_are_files_named_by_hash_in_the_app_folder(make_drive_store, fake_drive):
    drive = make_drive_store()
    digest, data = block(b"a block for the drive" * 100)
    drive.store.put(digest, data)
    files = {f["name"]: f for f in fake_drive.files(drive.email)}
    assert files[FOLDER_NAME]["mimeType"] == "application/vnd.google-apps.folder"
    assert files[digest]["parents"] == [files[FOLDER_NAME]["id"]]
    assert fake_drive.raw(drive.email, digest) == data
    again = make_drive_store(drive.email)  # another process: finds the same folder, makes no second one
    assert again.store.get(digest) == data
    assert [f["name"] for f in fake_drive.files(drive.email)].count(FOLDER_NAME) == 1


def test_an_expired_access_token_is_refreshed_and_handed_back(make_drive_store, fake_drive):
    drive = make_drive_store()
    digest, data = block(b"refresh me")
    drive.store.put(digest, data)
    fresh = make_drive_store(drive.email)  # another process: it has not looked the app folder up yet
    first = drive.store.session.token["access_token"]
    fake_drive.expire_access_tokens()
    assert drive.store.get(digest) == data  # 401, refresh, retry
    assert len(drive.tokens) == 1 and drive.tokens[0]["access_token"] != first
    assert drive.tokens[0]["refresh_token"]  # Google sends none on refresh: Authlib keeps the old one
    assert fresh.store.get(digest) == data  # the refresh happens inside the folder lookup
    assert len(fresh.tokens) == 1
    grants = [r["grant_type"] for r in fake_drive.token_requests]
    assert grants == ["refresh_token", "refresh_token"]


def test_a_token_about_to_expire_is_refreshed_before_the_call(tmp_path):
    """Access tokens shorter-lived than Authlib's 60 s leeway: each call refreshes first, none meets a 401."""
    from devtools.gdrive import FakeDrive
    from runtime.store.gdrive import DriveBlobStore, drive_session
    from tests.fixtures.gdrive import DRIVE_CLIENT_ID, DRIVE_CLIENT_SECRET

    fake = FakeDrive(DRIVE_CLIENT_ID, DRIVE_CLIENT_SECRET, root=tmp_path / "d", access_seconds=30).start()
    try:
        tokens = []
        session = drive_session(DRIVE_CLIENT_ID, DRIVE_CLIENT_SECRET, fake.grant("short@example.test"),
                                fake.token_url, 5.0, on_token=tokens.append)
        store = DriveBlobStore(session, api_url=fake.api_url, upload_url=fake.upload_url, timeout=5.0)
        digest, data = block(b"short-lived")
        store.put(digest, data)
        assert store.get(digest) == data
        assert len(tokens) >= 2 and all(r["grant_type"] == "refresh_token" for r in fake.token_requests)
        assert len({t["access_token"] for t in tokens}) == len(tokens)
    finally:
        fake.stop()


def test_a_revoked_grant_is_a_store_that_is_away(make_drive_store, fake_drive):
    drive = make_drive_store()
    digest, data = block(b"revoked")
    drive.store.put(digest, data)
    fake_drive.revoke_all(drive.email)
    with pytest.raises(DriveAccessRevoked) as caught:
        drive.store.get(digest)
    assert isinstance(caught.value, StoreUnavailable) and caught.value.status == 503
    with pytest.raises(DriveAccessRevoked):
        drive.store.check()


@pytest.mark.parametrize("status", [500, 503, 429, 403])
def test_drive_failures_are_store_unavailable(make_drive_store, fake_drive, status):
    drive = make_drive_store()
    digest, data = block(b"flaky %d" % status)
    drive.store.put(digest, data)
    fake_drive.fail_next(status)
    with pytest.raises(StoreUnavailable) as caught:
        drive.store.get(digest)
    assert str(status) in caught.value.message
    assert drive.store.get(digest) == data  # the next call works again


def test_a_token_endpoint_that_is_down_is_store_unavailable_not_revoked(make_drive_store, fake_drive):
    drive = make_drive_store()
    digest, data = block(b"token endpoint down")
    drive.store.put(digest, data)
    fake_drive.expire_access_tokens()
    fake_drive.fail_always(503, oauth=True)
    with pytest.raises(StoreUnavailable) as caught:
        drive.store.get(digest)
    assert not isinstance(caught.value, DriveAccessRevoked)
    fake_drive.heal()
    assert drive.store.get(digest) == data


def test_a_drive_that_does_not_answer_times_out(make_drive_store, fake_drive):
    drive = make_drive_store(timeout=1.0)
    fake_drive.stop()
    with pytest.raises(StoreUnavailable):
        drive.store.check()


def test_a_block_deleted_in_the_drive_is_not_found(make_drive_store, fake_drive):
    drive = make_drive_store()
    digest, data = block(b"user cleaned up")
    drive.store.put(digest, data)
    assert drive.store.get(digest) == data  # its file id is now cached
    other = make_drive_store(drive.email)
    other.store.delete(digest)
    with pytest.raises(BlobNotFound):
        drive.store.get(digest)
    assert drive.store.head(digest) is None


def test_no_presigned_links_and_nothing_staged(make_drive_store):
    store = make_drive_store().store
    digest, _ = block(b"x")
    assert store.presigns is False
    for call in (lambda: store.presign_put(digest, 1), lambda: store.presign_get(digest),
                 lambda: store.presign_puts([(digest, 1)])):
        with pytest.raises(PresignUnsupported) as caught:
            call()
        assert caught.value.status == 501
    assert store.claim("upload-a", digest, 1) is False
