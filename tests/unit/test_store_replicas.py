"""ReplicatedBlobStore specifics: reads fall back past missing, corrupt and unreachable copies, never serve bytes
that fail their hash, and a dead store costs one timeout, not the service. PCLOUD_STORES parsing."""

from __future__ import annotations

import hashlib
import io
import socket

import pytest

from runtime.errors import Unauthorized
from runtime.settings import SettingsError, load_settings
from runtime.store import (
    BlobCorrupt,
    BlobNotFound,
    LocalBlobStore,
    ReplicatedBlobStore,
    S3BlobStore,
    StoreUnavailable,
    make_stores,
)

SECRET = b"k" * 32


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_disks(tmp_path):
    a = LocalBlobStore(tmp_path / "a", secret=SECRET, public_url="http://x")
    b = LocalBlobStore(tmp_path / "b", secret=SECRET, public_url="http://x", name="b")
    return ReplicatedBlobStore({"default": a, "b": b}), a, b


def block(text: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(text).hexdigest(), text


def test_a_missing_copy_falls_back_to_the_other_store(two_disks):
    store, a, b = two_disks
    digest, data = block(b"only on b" * 100)
    b.put(digest, data)
    assert store.get(digest) == data
    assert b"".join(store.open_range(digest, 3, 7)) == data[3:8]


def test_a_corrupt_copy_is_reported_and_skipped(two_disks):
    store, a, b = two_disks
    digest, data = block(b"good bytes" * 100)
    a.put(digest, data)
    b.put(digest, data)
    a.path_for(digest).write_bytes(b"rotten" + data[6:])
    seen = []
    store.on_corrupt = lambda name, d: seen.append((name, d))
    assert store.read_verified(digest) == ("b", data)
    assert seen == [("default", digest)]


def test_corrupt_everywhere_serves_nothing(two_disks):
    store, a, b = two_disks
    digest, data = block(b"bytes" * 100)
    for backend in (a, b):
        backend.put(digest, data)
        backend.path_for(digest).write_bytes(b"X" * len(data))
    with pytest.raises(BlobCorrupt) as caught:
        store.open_range(digest, 0, 10)
    assert caught.value.status == 502 and caught.value.details["corrupt_on"] == ["default", "b"]


def test_a_fallback_source_is_hash_checked_too(two_disks):
    store, _, _ = two_disks
    digest, data = block(b"from elsewhere")
    store.fallback = lambda d: b"lies"
    with pytest.raises(BlobNotFound):
        store.get(digest)
    store.fallback = lambda d: data if d == digest else None
    assert store.get(digest) == data


def test_a_dead_store_degrades_nothing_but_itself(tmp_path):
    disk = LocalBlobStore(tmp_path / "a", secret=SECRET, public_url="http://x")
    dead = S3BlobStore("pcloud-nowhere", endpoint_url=f"http://127.0.0.1:{closed_port()}", timeout=0.5)
    store = ReplicatedBlobStore({"s3": dead, "default": disk}, retry_seconds=60)
    digest, data = block(b"still here")
    store.put(digest, data)  # the first store is down: the write lands on the next one
    assert disk.get(digest) == data
    assert not store.healthy("s3") and store.ingest == "default"
    assert store.get(digest) == data
    store.check()  # readiness holds while one store works
    states = {s["name"]: s["healthy"] for s in store.status()}
    assert states == {"s3": False, "default": True}


def test_check_fails_only_when_every_store_is_gone(tmp_path):
    dead = S3BlobStore("pcloud-nowhere", endpoint_url=f"http://127.0.0.1:{closed_port()}", timeout=0.5)
    with pytest.raises(StoreUnavailable):
        ReplicatedBlobStore({"default": dead}).check()


def test_pcloud_stores_parsing_and_named_local_links(tmp_path):
    env = {"PCLOUD_DATA_DIR": str(tmp_path), "PCLOUD_STORES": f'{{"disk2": "file://{tmp_path}/d2"}}'}
    settings = load_settings(env)
    assert settings.stores == (("disk2", f"file://{tmp_path}/d2"),)
    store = make_stores(settings, SECRET)
    assert store.names == ["default", "disk2"]
    link = store.backend("disk2").presign_put("a" * 64, 1)
    assert "store=disk2" in link.url
    assert store.backend("disk2").secret != store.backend("default").secret  # a link cannot be replayed elsewhere
    for bad in ('["x"]', '{"default": "file:///x"}', '{"Bad Name": "file:///x"}', '{"x": "ftp://h/x"}', "{"):
        with pytest.raises(SettingsError):
            load_settings({**env, "PCLOUD_STORES": bad})


class NoLinks:
    """A store clients cannot PUT to (as a cloud drive store): it may hold copies, never acknowledge uploads."""

    presigns = False

    def check(self) -> None:
        pass


def test_uploads_are_signed_for_the_policys_first_store_that_is_up(tmp_path):
    a = LocalBlobStore(tmp_path / "a", secret=SECRET, public_url="http://x")
    b = LocalBlobStore(tmp_path / "b", secret=b"b" * 32, public_url="http://x", name="b")
    c = LocalBlobStore(tmp_path / "c", secret=b"c" * 32, public_url="http://x", name="c")
    store = ReplicatedBlobStore({"default": a, "drive": NoLinks(), "b": b, "c": c})
    digest, data = block(b"for b" * 100)
    name, fallback, [link] = store.sign_puts([(digest, len(data))], upload_id="up1", preferred=["drive", "b", "c"])
    assert (name, fallback) == ("b", False)  # the drive store never acknowledges, and skipping it is no fallback
    assert "store=b" in link.url and b.verify("PUT", digest, dict(_query(link.url)))["upload"] == "up1"
    with pytest.raises(Unauthorized, match="signature"):
        a.verify("PUT", digest, dict(_query(link.url)))  # each named store signs with its own key
    b.put_staged("up1", digest, io.BytesIO(data), len(data))  # what functions/blobs does with that link
    assert store.claim("up1", digest, len(data), prefer=["b"])
    assert b.get(digest) == data and a.head(digest) is None  # acknowledged on b, the policy's first copy
    assert store.sign_puts([(digest, len(data))], preferred=None)[:2] == ("default", False)  # no policy: ingest


def test_a_named_store_that_fails_its_check_falls_back_to_the_next_then_the_ingest_store(tmp_path):
    a = LocalBlobStore(tmp_path / "a", secret=SECRET, public_url="http://x")
    b = LocalBlobStore(tmp_path / "b", secret=b"b" * 32, public_url="http://x", name="b")
    c = LocalBlobStore(tmp_path / "c", secret=b"c" * 32, public_url="http://x", name="c")
    store = ReplicatedBlobStore({"default": a, "b": b, "c": c}, probe_seconds=60)
    digest = "d" * 64
    assert store.sign_puts([(digest, 1)], preferred=["b", "c"])[:2] == ("b", False)
    (tmp_path / "b").rename(tmp_path / "b-away")
    (tmp_path / "b").write_text("not a directory")  # the disk is gone
    assert store.sign_puts([(digest, 1)], preferred=["b", "c"])[:2] == ("b", False)  # checked < 60 s ago
    store.probe_seconds = 0
    assert store.sign_puts([(digest, 1)], preferred=["b", "c"])[:2] == ("c", True)
    assert not store.healthy("b")
    assert store.sign_puts([(digest, 1)], preferred=["b"])[:2] == ("default", True)
    assert store.sign_puts([(digest, 1)], preferred=["drive-less", "b"])[:2] == ("default", True)


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(url).query)
