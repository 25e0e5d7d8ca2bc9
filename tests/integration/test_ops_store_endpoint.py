"""PCLOUD_STORE_URL `public_endpoint=` (issue 20): presigned URLs name the store as clients reach it, the server
talks to it at `endpoint=` (e.g. a container name), and the signatures hold at the public address (moto over HTTP,
reached at 127.0.0.1 by the server and at localhost by the "phone"). moto checks neither signatures nor
presigned checksums, so this shows where the URLs point and that they work there, not what S3 refuses."""

from __future__ import annotations

import hashlib
import secrets

import pytest
import requests

from runtime.settings import Settings, SettingsError
from runtime.store import make_store


def test_presigned_urls_use_the_public_endpoint_and_still_verify(s3_endpoint, aws_env):
    port = s3_endpoint.rsplit(":", 1)[1]
    public = f"http://localhost:{port}"
    bucket = f"pcloud-pub-{secrets.token_hex(5)}"
    settings = Settings(store_url=f"s3://{bucket}?endpoint={s3_endpoint}&public_endpoint={public}&region=us-east-1")
    store = make_store(settings, b"\0" * 32, 5.0)
    data = b"reachable from the phone " * 1000
    digest = hashlib.sha256(data).hexdigest()
    put = store.presign_put(digest, len(data), expires_in=300)
    assert put.url.startswith(f"{public}/{bucket}/blocks/{digest}?")
    answer = requests.put(put.url, data=data, headers=put.headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert store.head(digest) == len(data)  # the server's own calls go to endpoint=
    get = store.presign_get(digest, expires_in=300)
    assert get.url.startswith(f"{public}/")
    assert requests.get(get.url, timeout=10).content == data


@pytest.mark.parametrize("query", ["public_endpoint=ftp://x", "public_endpoint=", "colour=red"])
def test_bad_store_queries_name_the_problem(query):
    settings = Settings(store_url=f"s3://bucket-x?endpoint=http://127.0.0.1:9&{query}")
    if query == "public_endpoint=":
        store = make_store(settings, b"\0" * 32, 1.0, ensure=False)  # empty means: same as endpoint
        assert store.presigner is store.client
        return
    with pytest.raises(SettingsError, match="PCLOUD_STORE_URL"):
        make_store(settings, b"\0" * 32, 1.0, ensure=False)
