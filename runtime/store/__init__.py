"""Content-addressed object store: the BlobStore interface (base.py) and its named backends (local.py, s3.py).

Blocks are addressed by the lowercase hex SHA-256 of their bytes. Clients upload straight to the store
through presigned PUTs, and the store itself refuses bytes whose digest differs from the address.
`ReplicatedBlobStore` (replicas.py) puts several named ones behind the same interface.
Two backends: `LocalBlobStore` (files under PCLOUD_DATA_DIR, presigned URLs served by functions/blobs)
and `S3BlobStore` (AWS S3 or MinIO through boto3). Both pass tests/contract/test_blobstore.py.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from runtime.settings import SettingsError
from runtime.store.base import (
    _BUCKET,
    BLOCK_SIZE,
    CHUNK_SIZE,
    MAX_PRESIGN_SECONDS,
    BlobDigestMismatch,
    BlobNotFound,
    BlobStore,
    PresignedRequest,
    StoreUnavailable,
    check_digest,
    content_disposition,
)
from runtime.store.local import LocalBlobStore
from runtime.store.replicas import DEFAULT, BlobCorrupt, ReplicatedBlobStore
from runtime.store.s3 import S3BlobStore

__all__ = ["BLOCK_SIZE", "CHUNK_SIZE", "DEFAULT", "MAX_PRESIGN_SECONDS", "BlobCorrupt", "BlobDigestMismatch",
           "BlobNotFound", "BlobStore", "LocalBlobStore", "PresignedRequest", "ReplicatedBlobStore", "S3BlobStore",
           "StoreUnavailable", "check_digest", "content_disposition", "make_store", "make_stores", "store_from_url"]


def make_store(settings, secret: bytes, http_timeout: float = 10.0, ensure: bool = True) -> BlobStore:
    """Pick the backend named by PCLOUD_STORE_URL; fail at start-up on a bad URL.

    With `ensure`, an S3 bucket that does not exist yet is created (StoreUnavailable when S3 is down).
    """
    url = settings.store_url or f"file://{Path(settings.data_dir).resolve() / 'blobs'}"
    return store_from_url(url, settings, secret, http_timeout, ensure)


def make_stores(settings, secret: bytes, http_timeout: float = 10.0, ensure: bool = True) -> ReplicatedBlobStore:
    """The default store plus every named store of PCLOUD_STORES, as one ReplicatedBlobStore.

    A named store that cannot be reached at start-up is kept (marked down), never fatal: the replica policy
    reports it degraded and the repair worker catches up when it is back. Each named local store signs its
    links with its own key (derived from `secret`), so a link for one can never be replayed on another.
    """
    backends: dict[str, BlobStore] = {DEFAULT: make_store(settings, secret, http_timeout, ensure)}
    down = []
    for name, url in settings.stores:
        own = hmac.new(secret, f"store:{name}".encode(), hashlib.sha256).digest()
        try:
            backends[name] = store_from_url(url, settings, own, http_timeout, ensure, name=name)
        except StoreUnavailable as exc:
            backends[name] = store_from_url(url, settings, own, http_timeout, False, name=name)
            down.append((name, str(exc)))
    replicated = ReplicatedBlobStore(backends)
    for name, reason in down:
        replicated.mark_down(name, reason)
    return replicated


def store_from_url(url: str, settings, secret: bytes, http_timeout: float = 10.0, ensure: bool = True,
                   name: str | None = None) -> BlobStore:
    """One backend from a file:// or s3:// URL; `name` (a PCLOUD_STORES entry) goes into error messages and
    into the local store's links."""
    var = f"PCLOUD_STORES[{name}]" if name else "PCLOUD_STORE_URL"
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.query:
            raise SettingsError(f"{var} must be file:///ABSOLUTE/PATH, got {url!r}")
        return LocalBlobStore(Path(unquote(parts.path)), secret=secret, public_url=settings.public_url, name=name)
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket) or parts.path not in ("", "/"):
            raise SettingsError(f"{var} must be s3://BUCKET?endpoint=URL&region=NAME, got {url!r}")
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise SettingsError(f"{var} has a malformed query: {url!r}") from None
        unknown = set(query) - {"endpoint", "public_endpoint", "region"}
        if unknown or any(len(v) != 1 for v in query.values()):
            raise SettingsError(f"{var} accepts endpoint=, public_endpoint= and region= once each, "
                                f"got {url!r}")
        endpoint = query.get("endpoint", [""])[0] or None
        public_endpoint = query.get("public_endpoint", [""])[0] or None
        for field, value in (("endpoint", endpoint), ("public_endpoint", public_endpoint)):
            if value is not None:
                ep = urlsplit(value)
                if ep.scheme not in ("http", "https") or not ep.netloc:
                    raise SettingsError(f"{var} {field} must be an http(s) URL, got {value!r}")
        region = query.get("region", [""])[0] or "us-east-1"
        if not re.fullmatch(r"[a-z0-9-]+", region):
            raise SettingsError(f"{var} region looks wrong: {region!r}")
        store = S3BlobStore(bucket, endpoint_url=endpoint, region=region, timeout=http_timeout,
                            public_endpoint=public_endpoint)
        if ensure:
            store.ensure_bucket()
        return store
    raise SettingsError(f"{var} must be file://PATH or s3://BUCKET?..., got {url!r}")
