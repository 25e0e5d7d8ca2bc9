"""make_store: PCLOUD_STORE_URL picks and configures the backend, and a bad URL fails at start-up."""

from __future__ import annotations

import pytest

from runtime.settings import Settings, SettingsError, load_settings
from runtime.store import LocalBlobStore, S3BlobStore, make_store

SECRET = b"k" * 32


def test_the_default_is_a_local_store_under_the_data_dir(tmp_path):
    settings = load_settings({"PCLOUD_DATA_DIR": str(tmp_path), "PCLOUD_PUBLIC_URL": "https://cloud.example"})
    store = make_store(settings, SECRET)
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path.resolve() / "blobs"
    assert store.presign_get("ab" * 32).url.startswith("https://cloud.example/blobs/v1/")
    store.check()


def test_a_file_url_names_the_directory(tmp_path):
    target = tmp_path / "with space"
    store = make_store(Settings(store_url=f"file://{tmp_path}/with%20space"), SECRET)
    assert isinstance(store, LocalBlobStore)
    assert store.root == target


def test_an_s3_url_builds_an_s3_store_and_creates_its_bucket(s3_endpoint, aws_env):
    url = f"s3://pcloud-make-test?endpoint={s3_endpoint}&region=us-east-1"
    store = make_store(Settings(store_url=url), SECRET, http_timeout=3.0)
    assert isinstance(store, S3BlobStore)
    assert store.bucket == "pcloud-make-test"
    assert store.client.meta.endpoint_url == s3_endpoint
    assert store.client.meta.region_name == "us-east-1"
    store.check()  # the bucket exists now
    again = make_store(Settings(store_url=url), SECRET)  # an existing bucket is fine
    again.check()
    assert again.bucket == store.bucket


def test_s3_region_defaults_to_us_east_1(aws_env):
    store = make_store(Settings(store_url="s3://some-bucket"), SECRET, ensure=False)
    assert store.client.meta.region_name == "us-east-1"
    assert store.presign_get("ab" * 32).url.startswith("https://")


@pytest.mark.parametrize("url", [
    "file://relative/path",
    "file:///tmp/x?mode=fast",
    "s3://",
    "s3://Bad_Bucket",
    "s3://bucket/extra/path",
    "s3://bucket?endpoint=ftp://127.0.0.1:9000",
    "s3://bucket?endpoint=not-a-url",
    "s3://bucket?region=us-east-1&colour=blue",
    "s3://bucket?region=us-east-1&region=eu-west-1",
    "s3://bucket?region=US%20EAST",
    "gopher://bucket",
])
def test_bad_store_urls_are_settings_errors(url):
    with pytest.raises(SettingsError) as caught:
        make_store(Settings(store_url=url), SECRET, ensure=False)
    assert "PCLOUD_STORE_URL" in str(caught.value)
