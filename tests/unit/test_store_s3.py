"""S3BlobStore specifics: the signed checksum on presigned PUTs, and botocore errors in our terms.

moto checks neither presigned signatures nor checksums, so what real S3/MinIO enforce is asserted on the
URL itself: the checksum header must be among the signed headers, with the right value.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from runtime.store import BlobDigestMismatch, S3BlobStore, StoreUnavailable


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_presigned_put_signs_the_checksum_and_length(make_s3_store):
    store = make_s3_store()
    data = b"block bytes"
    digest = digest_of(data)
    presigned = store.presign_put(digest, len(data), expires_in=120)
    query = parse_qs(urlsplit(presigned.url).query)
    signed = query["X-Amz-SignedHeaders"][0].split(";")
    assert "x-amz-checksum-sha256" in signed
    assert "content-length" in signed
    assert query["X-Amz-Expires"] == ["120"]
    assert urlsplit(presigned.url).path == f"/{store.bucket}/blocks/{digest}"
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert presigned.headers == {"Content-Length": str(len(data)), "x-amz-checksum-sha256": expected}


def test_put_refuses_wrong_bytes_before_sending(make_s3_store):
    store = make_s3_store()
    wrong = digest_of(b"expected")
    with pytest.raises(BlobDigestMismatch):
        store.put(wrong, b"actual")
    assert store.head(wrong) is None


def test_an_unreachable_endpoint_is_store_unavailable(aws_env):
    store = S3BlobStore("pcloud-nowhere", endpoint_url=f"http://127.0.0.1:{closed_port()}", timeout=1.0)
    digest = digest_of(b"x")
    for call in (store.check, store.ensure_bucket, lambda: store.head(digest), lambda: store.get(digest),
                 lambda: store.put(digest, b"x")):
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert caught.value.status == 503


def test_a_missing_bucket_fails_the_readiness_check(s3_endpoint, aws_env):
    absent = S3BlobStore("pcloud-never-created", endpoint_url=s3_endpoint, timeout=2.0)
    with pytest.raises(StoreUnavailable) as caught:
        absent.check()
    assert "does not exist" in caught.value.message
