"""The batch S3 presigner signs exactly what botocore signs (it is checked against botocore's own URLs, offline:
presigning sends nothing), and falls back to botocore whenever its signature would differ."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from runtime.store import S3BlobStore, sigv4

BLOCK = 4 * 1024 * 1024
SHAPES = {
    "path style (MinIO, moto)": {"endpoint_url": "http://127.0.0.1:9000"},
    "virtual host (AWS)": {"region": "eu-west-1"},
    "public endpoint with a default port": {"endpoint_url": "http://minio:9000",
                                            "public_endpoint": "https://s3.example.com:443"},
}


@pytest.fixture(params=[None, "a/session+token="], ids=["keys", "session token"])
def credentials(request, monkeypatch):
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    if request.param:
        monkeypatch.setenv("AWS_SESSION_TOKEN", request.param)
    else:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return request.param


def _botocore_urls(store: S3BlobStore, blocks, upload_id):
    """botocore's own URLs for `blocks`, all signed within one second (SigV4 signs the time)."""
    for _ in range(5):
        urls = [store.presign_put(d, n, 86400, upload_id).url for d, n in blocks]
        if len({parse_qs(urlsplit(u).query)["X-Amz-Date"][0] for u in urls}) == 1:
            return urls
    raise AssertionError("could not sign within one second")


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_signatures_equal_botocores_for_every_key_and_size(shape, credentials):
    store = S3BlobStore("pcloud-bucket", **SHAPES[shape])
    blocks = [(secrets.token_hex(32), BLOCK) for _ in range(20)] + [(secrets.token_hex(32), 17)]
    urls = _botocore_urls(store, blocks, "upload_1")
    secret = store._presign_session.get_credentials().get_frozen_credentials().secret_key
    key = store.staged_key("upload_1", blocks[0][0])
    template = sigv4.template_for(urls[0], key, BLOCK, store.checksum(blocks[0][0]), secret)
    assert template is not None
    for (digest, size), url in zip(blocks, urls, strict=True):
        assert template.url(store.staged_key("upload_1", digest), size, store.checksum(digest)) == url
    if credentials:
        assert parse_qs(urlsplit(urls[0]).query)["X-Amz-Security-Token"] == [credentials]


def test_presign_puts_gives_each_block_its_own_put(credentials):
    store = S3BlobStore("pcloud-bucket", endpoint_url="http://127.0.0.1:9000")
    blocks = [(secrets.token_hex(32), BLOCK), (secrets.token_hex(32), BLOCK), (secrets.token_hex(32), 5)]
    signed = store.presign_puts(blocks, expires_in=600, upload_id="u1")
    assert len(signed) == 3 and store.presign_puts([], 600, "u1") == []
    for (digest, size), put in zip(blocks, signed, strict=True):
        assert put.method == "PUT"
        assert urlsplit(put.url).path == f"/pcloud-bucket/staging/u1/{digest}"
        assert put.headers == {"Content-Length": str(size), "x-amz-checksum-sha256": store.checksum(digest)}
        assert parse_qs(urlsplit(put.url).query)["X-Amz-Expires"] == ["600"]
    assert len({urlsplit(p.url).query for p in signed}) == 3  # each signature is its own
    with pytest.raises(ValueError):
        store.presign_puts([(blocks[0][0], 1), (blocks[1][0], BLOCK + 1)], 600, "u1")


def test_a_signature_that_would_differ_falls_back_to_botocore(credentials):
    store = S3BlobStore("pcloud-bucket", endpoint_url="http://127.0.0.1:9000")
    digest = secrets.token_hex(32)
    url = store.presign_put(digest, BLOCK, 600, "u1").url
    key = store.staged_key("u1", digest)
    assert sigv4.template_for(url, key, BLOCK, store.checksum(digest), "not-the-secret") is None
    assert sigv4.template_for(url, key, BLOCK, store.checksum(digest), None) is None
    assert sigv4.template_for(url.replace("X-Amz-SignedHeaders=content-length%3B", "X-Amz-SignedHeaders="),
                              key, BLOCK, store.checksum(digest), "x") is None
