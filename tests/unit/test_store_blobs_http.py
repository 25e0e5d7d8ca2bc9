"""functions/blobs over real HTTP: the refusals a presigned local URL must give, and download details."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from runtime.store import LocalBlobStore

TIMEOUT = 10


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def error_code(answer) -> str:
    return answer.json()["error"]["code"]


def nothing_stored(server) -> bool:
    return not [p for p in server.root.rglob("*") if p.is_file()]


def test_tampered_signature_is_401(local_blob_server):
    data = b"payload"
    presigned = local_blob_server.store.presign_put(digest_of(data), len(data))
    answer = requests.put(with_query(presigned.url, sig="f" * 64), data=data, timeout=TIMEOUT)
    assert answer.status_code == 401
    assert error_code(answer) == "invalid_signature"
    unsigned = requests.put(presigned.url.split("?")[0], data=data, timeout=TIMEOUT)
    assert unsigned.status_code == 401
    assert nothing_stored(local_blob_server)


def test_expired_link_is_401(local_blob_server):
    server = local_blob_server
    past = LocalBlobStore(server.root, secret=server.secret, public_url=server.url, clock=lambda: 1_000_000)
    data = b"payload"
    presigned = past.presign_put(digest_of(data), len(data), expires_in=60)
    answer = requests.put(presigned.url, data=data, headers=presigned.headers, timeout=TIMEOUT)
    assert answer.status_code == 401
    assert error_code(answer) == "url_expired"
    assert nothing_stored(server)


def test_wrong_bytes_are_refused_and_nothing_is_stored(local_blob_server):
    good = b"G" * 100_000
    presigned = local_blob_server.store.presign_put(digest_of(good), len(good))
    answer = requests.put(presigned.url, data=b"B" * 100_000, headers=presigned.headers, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert error_code(answer) == "digest_mismatch"
    assert nothing_stored(local_blob_server)


def test_a_body_of_another_size_is_refused(local_blob_server):
    data = b"twelve bytes"
    presigned = local_blob_server.store.presign_put(digest_of(data), len(data))
    for body in (data + b"!", data[:-1], b""):
        answer = requests.put(presigned.url, data=body, timeout=TIMEOUT)
        assert answer.status_code == 400
        assert error_code(answer) == "size_mismatch"
    assert nothing_stored(local_blob_server)


def test_a_malformed_hash_is_400(local_blob_server):
    answer = requests.put(f"{local_blob_server.url}/blobs/v1/not-a-hash?size=1&expires=1&sig=x", data=b"x",
                          timeout=TIMEOUT)
    assert answer.status_code == 400
    assert error_code(answer) == "invalid_hash"


def test_download_headers_ranges_and_conditionals(local_blob_server):
    store = local_blob_server.store
    data = bytes(range(256)) * 40
    digest = digest_of(data)
    store.put(digest, data)
    url = store.presign_get(digest).url

    full = requests.get(url, timeout=TIMEOUT)
    assert full.status_code == 200
    assert full.headers["ETag"] == f'"{digest}"'
    assert full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Content-Length"] == str(len(data))

    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=TIMEOUT)
    assert tail.status_code == 206
    assert tail.content == data[-10:]

    beyond = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=TIMEOUT)
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    assert error_code(beyond) == "range_not_satisfiable"

    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"someone-else"'}, timeout=TIMEOUT)
    assert stale.status_code == 200
    assert stale.content == data

    cached = requests.get(url, headers={"If-None-Match": f'"{digest}"'}, timeout=TIMEOUT)
    assert cached.status_code == 304
    assert cached.content == b""

    head = requests.head(url, timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))


def test_download_links_are_checked_too(local_blob_server):
    store = local_blob_server.store
    data = b"secret bytes"
    digest = digest_of(data)
    store.put(digest, data)
    url = store.presign_get(digest, filename="a.txt").url
    answer = requests.get(with_query(url, filename="b.html"), timeout=TIMEOUT)
    assert answer.status_code == 401
    assert error_code(answer) == "invalid_signature"
    upload_link = store.presign_put(digest, len(data)).url
    assert requests.get(upload_link, timeout=TIMEOUT).status_code == 401


def test_with_an_s3_store_the_function_serves_nothing(make_s3_store, tmp_path):
    from functions.blobs import create_app
    from runtime.settings import Settings

    store = make_s3_store()
    data = b"in s3"
    store.put(digest_of(data), data)
    app = create_app(Settings(data_dir=tmp_path), store=store)
    answer = app.test_client().get(f"/blobs/v1/{digest_of(data)}?expires=1&sig=x")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("size", [0, 4 * 1024 * 1024])
def test_edge_sizes_round_trip(local_blob_server, size):
    data = b"\x00" * size
    digest = digest_of(data)
    presigned = local_blob_server.store.presign_put(digest, size)
    answer = requests.put(presigned.url, data=data, headers=presigned.headers, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    got = requests.get(local_blob_server.store.presign_get(digest).url, timeout=TIMEOUT)
    assert got.status_code == 200
    assert got.content == data
