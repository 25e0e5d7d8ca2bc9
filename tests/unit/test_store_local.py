"""LocalBlobStore specifics the contract cannot see: layout on disk, atomic writes, link signatures."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from runtime.errors import BadRequest, Unauthorized
from runtime.store import BLOCK_SIZE, BlobDigestMismatch, LocalBlobStore, StoreUnavailable

SECRET = b"s" * 32


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def store(tmp_path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", secret=SECRET, public_url="https://cloud.example/")


def test_blobs_fan_out_into_two_levels_of_directories(store, tmp_path):
    data = b"fan out"
    digest = digest_of(data)
    store.put(digest, data)
    path = tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert store.path_for(digest) == path


def test_refused_writes_leave_no_file_behind(store, tmp_path):
    data = b"a" * 200_000
    wrong = digest_of(b"b" * 200_000)
    with pytest.raises(BlobDigestMismatch):
        store.put_stream(wrong, io.BytesIO(data), len(data))
    with pytest.raises(BlobDigestMismatch):
        store.put(wrong, data)
    leftovers = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert leftovers == []


def test_put_stream_refuses_extra_bytes(store):
    data = b"exactly these"
    digest = digest_of(data)
    with pytest.raises(BadRequest) as caught:
        store.put_stream(digest, io.BytesIO(data + b"and more"), len(data))
    assert caught.value.code == "size_mismatch"
    assert store.head(digest) is None


def test_a_digest_must_be_lowercase_hex_sha256(store):
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, "zz" * 32, "", "ab" * 32 + "\n"):
        with pytest.raises(BadRequest) as caught:
            store.head(bad)
        assert caught.value.code == "invalid_hash"


def test_check_fails_when_the_root_is_not_a_writable_directory(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"a file where the blob directory should be")
    broken = LocalBlobStore(blocker, secret=SECRET, public_url="http://x")
    with pytest.raises(StoreUnavailable) as caught:
        broken.check()
    assert caught.value.status == 503
    LocalBlobStore(tmp_path / "fresh", secret=SECRET, public_url="http://x").check()
    assert (tmp_path / "fresh").is_dir()


def test_presigned_put_url_shape_and_verification(store):
    digest = digest_of(b"data")
    presigned = store.presign_put(digest, 4, expires_in=60)
    parts = urlsplit(presigned.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"https://cloud.example/blobs/v1/{digest}"
    query = query_of(presigned.url)
    assert set(query) == {"size", "expires", "sig"}
    assert presigned.headers == {"Content-Length": "4"}
    assert store.verify("PUT", digest, query)["size"] == 4


@pytest.mark.parametrize("field, value", [("sig", "0" * 64), ("size", "5"), ("expires", "9999999999"),
                                          ("sig", ""), ("expires", "soon"), ("expires", "\u00b2"),
                                          ("size", "-4")])
def test_any_tampering_breaks_the_signature(store, field, value):
    digest = digest_of(b"data")
    query = query_of(store.presign_put(digest, 4).url)
    query[field] = value
    with pytest.raises(Unauthorized) as caught:
        store.verify("PUT", digest, query)
    assert caught.value.code == "invalid_signature"


def test_a_link_is_bound_to_its_digest_method_and_secret(store, tmp_path):
    digest, other = digest_of(b"data"), digest_of(b"other")
    put_query = query_of(store.presign_put(digest, 4).url)
    get_query = query_of(store.presign_get(digest).url)
    with pytest.raises(Unauthorized):
        store.verify("PUT", other, put_query)
    with pytest.raises(Unauthorized):
        store.verify("GET", digest, put_query | {"size": ""})
    with pytest.raises(Unauthorized):
        store.verify("PUT", digest, get_query | {"size": "4"})
    stranger = LocalBlobStore(tmp_path / "blobs", secret=b"t" * 32, public_url="https://cloud.example")
    with pytest.raises(Unauthorized):
        stranger.verify("PUT", digest, put_query)


def test_the_download_name_is_signed(store):
    digest = digest_of(b"data")
    query = query_of(store.presign_get(digest, filename="a.txt").url)
    assert store.verify("GET", digest, query)["filename"] == "a.txt"
    with pytest.raises(Unauthorized):
        store.verify("GET", digest, query | {"filename": "evil.html"})


def test_expired_links_are_refused_after_the_signature_check(tmp_path):
    now = [1_000_000.0]
    store = LocalBlobStore(tmp_path, secret=SECRET, public_url="http://x", clock=lambda: now[0])
    digest = digest_of(b"data")
    query = query_of(store.presign_put(digest, 4, expires_in=60).url)
    now[0] += 60
    assert store.verify("PUT", digest, query)["expires"] == 1_000_060
    now[0] += 1
    with pytest.raises(Unauthorized) as caught:
        store.verify("PUT", digest, query)
    assert caught.value.code == "url_expired"


def test_presign_bounds(store):
    digest = digest_of(b"data")
    with pytest.raises(ValueError):
        store.presign_put(digest, BLOCK_SIZE + 1)
    with pytest.raises(ValueError):
        store.presign_put(digest, 4, expires_in=0)
    assert store.presign_put(digest, BLOCK_SIZE).headers["Content-Length"] == str(BLOCK_SIZE)


def test_sweep_removes_only_stale_temp_files(tmp_path):
    now = [2_000_000_000.0]
    store = LocalBlobStore(tmp_path / "blobs", secret=SECRET, public_url="http://x", clock=lambda: now[0])
    assert store.sweep_incoming() == 0
    store.check()
    stale = tmp_path / "blobs" / "tmp" / ".incoming-crashed"
    fresh = tmp_path / "blobs" / "tmp" / ".incoming-writing"
    stale.write_bytes(b"half a block")
    fresh.write_bytes(b"still arriving")
    os.utime(stale, (now[0] - 7200, now[0] - 7200))
    os.utime(fresh, (now[0] - 10, now[0] - 10))
    assert store.sweep_incoming(older_than=3600) == 1
    assert not stale.exists()
    assert fresh.exists()


def test_concurrent_writers_of_one_block_all_succeed(store):
    data = os.urandom(512 * 1024)
    digest = digest_of(data)
    errors = []

    def write():
        try:
            store.put_stream(digest, io.BytesIO(data), len(data))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert store.get(digest) == data
    assert list((store.root / "tmp").iterdir()) == []


def test_a_range_that_is_never_read_releases_its_file(store):
    data = b"r" * 1000
    digest = digest_of(data)
    store.put(digest, data)
    chunks = store.open_range(digest, 10)
    chunks.close()  # what a WSGI server does when a client goes away before the body is sent
    assert chunks.handle.closed
    assert b"".join(store.open_range(digest, 10)) == data[10:]
