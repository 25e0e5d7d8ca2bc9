"""One contract for every BlobStore backend: the local file store, S3 (moto over HTTP), the replicated store
over both (two local directories and a bucket), and a user's Google Drive (the Drive v3 stand-in).

A drive is a replica target only (no presigned URLs): the tests taking `presign_store` run on the others."""

from __future__ import annotations

import hashlib
import io

import pytest
import requests

from runtime.errors import RangeNotSatisfiable
from runtime.store import BlobDigestMismatch, BlobNotFound, BlobStore

TIMEOUT = 10


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _backend(request, kind: str) -> BlobStore:
    if kind == "gdrive":
        return request.getfixturevalue("make_drive_store")().store
    if kind == "local":
        return request.getfixturevalue("local_blob_server").store
    if kind == "replicated":
        return request.getfixturevalue("replicated_blob_server").store
    return request.getfixturevalue("make_s3_store")()


@pytest.fixture(params=["local", "s3", "replicated", "gdrive"])
def store(request) -> BlobStore:
    """Each backend."""
    return _backend(request, request.param)


@pytest.fixture(params=["local", "s3", "replicated"])
def presign_store(request) -> BlobStore:
    """Each backend with presigned URLs that a real HTTP client can follow."""
    return _backend(request, request.param)


def test_put_then_get_head_and_delete(store):
    data = b"hello block" * 1000
    digest = digest_of(data)
    assert store.head(digest) is None
    store.put(digest, data)
    assert store.head(digest) == len(data)
    assert store.get(digest) == data
    store.put(digest, data)  # the same block twice is fine: content addressing
    assert store.get(digest) == data
    store.delete(digest)
    assert store.head(digest) is None
    with pytest.raises(BlobNotFound):
        store.get(digest)
    store.delete(digest)  # deleting an absent block is not an error
    assert store.head(digest) is None


def test_put_refuses_bytes_of_another_digest(store):
    data = b"the real bytes"
    wrong = digest_of(b"other bytes")
    with pytest.raises(BlobDigestMismatch) as caught:
        store.put(wrong, data)
    assert caught.value.status == 400
    assert caught.value.code == "digest_mismatch"
    assert store.head(wrong) is None


def test_missing_blob_is_not_found(store):
    digest = digest_of(b"never stored")
    with pytest.raises(BlobNotFound) as caught:
        store.get(digest)
    assert caught.value.status == 404
    with pytest.raises(BlobNotFound):
        store.open_range(digest, 0, 10)


def test_open_range_slices_and_streams(store):
    data = bytes(range(256)) * 1024  # 256 KiB: several chunks
    digest = digest_of(data)
    store.put(digest, data)
    whole = list(store.open_range(digest))
    assert len(whole) > 1
    assert b"".join(whole) == data
    assert b"".join(store.open_range(digest, 10, 19)) == data[10:20]
    assert b"".join(store.open_range(digest, len(data) - 5)) == data[-5:]
    assert b"".join(store.open_range(digest, 100, len(data) + 1000)) == data[100:]
    assert b"".join(store.open_range(digest, 0, 0)) == data[:1]
    with pytest.raises(RangeNotSatisfiable):
        store.open_range(digest, len(data))


def test_empty_blob(store):
    digest = digest_of(b"")
    store.put(digest, b"")
    assert store.head(digest) == 0
    assert store.get(digest) == b""
    assert b"".join(store.open_range(digest)) == b""
    with pytest.raises(RangeNotSatisfiable):
        store.open_range(digest, 0, 10)


def test_put_stream_checks_digest_and_size(store):
    data = b"x" * 300_000
    digest = digest_of(data)
    store.put_stream(digest, io.BytesIO(data), len(data))
    assert store.get(digest) == data
    other = digest_of(b"y" * 300_000)
    with pytest.raises(BlobDigestMismatch):
        store.put_stream(other, io.BytesIO(data), len(data))
    assert store.head(other) is None
    short = digest_of(b"short")
    with pytest.raises(Exception) as caught:
        store.put_stream(short, io.BytesIO(b"short"), 10)
    assert caught.value.code == "size_mismatch"
    assert store.head(short) is None


def test_presigned_put_then_get_over_http(presign_store):
    data = b"block over http " * 5000
    digest = digest_of(data)
    upload = presign_store.presign_put(digest, len(data), expires_in=300)
    assert upload.method == "PUT"
    assert upload.headers["Content-Length"] == str(len(data))
    answer = requests.request(upload.method, upload.url, data=data, headers=upload.headers, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert presign_store.head(digest) == len(data)

    download = presign_store.presign_get(digest, expires_in=300, filename="report ü.pdf")
    assert download.method == "GET"
    got = requests.get(download.url, headers=download.headers, timeout=TIMEOUT)
    assert got.status_code == 200
    assert got.content == data
    assert "attachment" in got.headers["Content-Disposition"]
    assert "report%20%C3%BC.pdf" in got.headers["Content-Disposition"]

    part = requests.get(presign_store.presign_get(digest).url, headers={"Range": "bytes=5-14"}, timeout=TIMEOUT)
    assert part.status_code == 206
    assert part.content == data[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(data)}"


def test_presigned_get_of_missing_blob_is_404(presign_store):
    missing = presign_store.presign_get(digest_of(b"not here"))
    answer = requests.get(missing.url, timeout=TIMEOUT)
    assert answer.status_code == 404


def test_check_passes_on_a_working_store(store):
    assert store.check() is None


def test_an_upload_bound_put_is_staged_until_that_upload_claims_it(presign_store):
    """Proof of possession: bytes PUT through upload A's link are only A's to claim."""
    data = b"staged block " * 3000
    digest = digest_of(data)
    link = presign_store.presign_put(digest, len(data), expires_in=300, upload_id="upload-a")
    answer = requests.request(link.method, link.url, data=data, headers=link.headers, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert presign_store.head(digest) is None  # not in the shared block yet
    assert presign_store.claim("upload-b", digest, len(data)) is False  # another upload's claim finds nothing
    assert presign_store.head(digest) is None
    assert presign_store.claim("upload-a", digest, len(data)) is True
    assert presign_store.head(digest) == len(data) and presign_store.get(digest) == data
    assert presign_store.claim("upload-a", digest, len(data)) is False  # a claim is used up (the caller records it)


def test_claim_of_a_block_already_shared_keeps_one_copy(presign_store):
    data = b"shared block " * 2000
    digest = digest_of(data)
    presign_store.put(digest, data)
    link = presign_store.presign_put(digest, len(data), upload_id="upload-c")
    assert requests.request(link.method, link.url, data=data, headers=link.headers,
                            timeout=TIMEOUT).status_code == 200
    assert presign_store.claim("upload-c", digest, len(data)) is True
    assert presign_store.get(digest) == data


def test_staged_bytes_of_another_digest_are_refused_and_discard_drops_the_rest(presign_store):
    data, other = b"one " * 1000, b"two " * 1000
    digest = digest_of(data)
    link = presign_store.presign_put(digest, len(data), upload_id="upload-d")
    bad = requests.request(link.method, link.url, data=other, headers=link.headers, timeout=TIMEOUT)
    # the local store (and S3) refuse the body at once; moto stores it, so the claim must refuse it
    assert bad.status_code != 200 or presign_store.claim("upload-d", digest, len(data)) is False
    assert presign_store.claim("upload-d", digest, len(data)) is False and presign_store.head(digest) is None
    assert requests.request(link.method, link.url, data=data, headers=link.headers,
                            timeout=TIMEOUT).status_code == 200
    presign_store.discard_staged("upload-d")
    assert presign_store.claim("upload-d", digest, len(data)) is False and presign_store.head(digest) is None


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 65])
def test_upload_ids_are_checked(presign_store, bad):
    with pytest.raises(Exception) as caught:
        presign_store.presign_put(digest_of(b"x"), 1, upload_id=bad)
    assert caught.value.code == "invalid_upload_id"
