"""The local store's presigned URLs work end to end through the real gateway (prefix /blobs, auth none)."""

from __future__ import annotations

import hashlib

import requests

TIMEOUT = 15


def test_presigned_block_round_trip_through_the_gateway(gateway, clients):
    store = clients.store
    data = bytes(range(256)) * (4 * 1024 * 4)  # one full 4 MiB block
    digest = hashlib.sha256(data).hexdigest()
    upload = store.presign_put(digest, len(data))
    assert upload.url.startswith(f"{gateway.url}/blobs/v1/")
    answer = requests.put(upload.url, data=data, headers=upload.headers, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-Id"]
    assert store.head(digest) == len(data)
    download = requests.get(store.presign_get(digest).url, headers={"Range": "bytes=4194300-"}, timeout=TIMEOUT)
    assert download.status_code == 206
    assert download.content == data[-4:]


def test_the_gateway_refuses_bodies_over_a_block(gateway, clients):
    data = b"x" * (4 * 1024 * 1024 + 128 * 1024)
    upload = clients.store.presign_put(hashlib.sha256(b"").hexdigest(), 0)
    answer = requests.put(upload.url, data=data, timeout=TIMEOUT)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_readiness_reports_the_store(gateway):
    answer = requests.get(f"{gateway.url}/readyz", timeout=TIMEOUT)
    assert answer.json()["checks"]["store"] == "ok"


def test_openapi_documents_the_presigned_block_urls(gateway):
    spec = requests.get(f"{gateway.url}/openapi.json", timeout=TIMEOUT).json()
    block = spec["paths"]["/blobs/v1/{digest}"]
    assert set(block) == {"put", "get"}
    assert block["put"]["security"] == []
