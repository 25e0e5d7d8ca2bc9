"""Content-addressed object store: the BlobStore interface and its named backends.

Blocks are addressed by the lowercase hex SHA-256 of their bytes. Clients upload straight to the store
through presigned PUTs, and the store itself refuses bytes whose digest differs from the address.
Two backends: `LocalBlobStore` (files under PCLOUD_DATA_DIR, presigned URLs served by functions/blobs)
and `S3BlobStore` (AWS S3 or MinIO through boto3). Both pass tests/contract/test_blobstore.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from runtime.errors import (
    ApiError,
    BadRequest,
    NotFound,
    RangeNotSatisfiable,
    Unauthorized,
    Unavailable,
)
from runtime.settings import SettingsError

CHUNK_SIZE = 64 * 1024
BLOCK_SIZE = 4 * 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the S3 limit; the local store keeps the same one
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_NUMBER = re.compile(r"^[0-9]{1,12}$")  # ASCII digits only: "²".isdigit() is True
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class BlobNotFound(NotFound):
    code = "blob_not_found"


class BlobDigestMismatch(BadRequest):
    code = "digest_mismatch"


class StoreUnavailable(Unavailable):
    pass


@dataclass(frozen=True)
class PresignedRequest:
    """What a client needs to send or fetch one blob without our servers in the middle."""

    url: str
    method: str
    headers: dict = field(default_factory=dict)


class BlobStore(Protocol):
    def put(self, digest: str, data: bytes) -> None: ...

    def put_stream(self, digest: str, stream: BinaryIO, size: int) -> None:
        """Store exactly `size` bytes read from `stream` without holding them all in memory."""

    def get(self, digest: str) -> bytes: ...

    def open_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end] inclusive."""

    def head(self, digest: str) -> int | None:
        """The blob's size, or None when absent."""

    def stat(self, digest: str) -> tuple[int, float] | None:
        """(size, last written as epoch seconds), or None when absent: a newer write proves a client sent it."""

    def delete(self, digest: str) -> None: ...

    def presign_put(self, digest: str, size: int, expires_in: int = 3600) -> PresignedRequest: ...

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest: ...

    def check(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached (readiness)."""


def check_digest(digest: str) -> str:
    """Refuse anything but 64 lowercase hex chars: the digest becomes a file name or an object key."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BadRequest("a block hash is 64 lowercase hex characters (SHA-256)", code="invalid_hash")
    return digest


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise RangeNotSatisfiable(f"bad byte range {start}-{'' if end is None else end}")


def _check_expiry(expires_in: int) -> None:
    if not 0 < expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_in must be within 1..{MAX_PRESIGN_SECONDS} seconds, got {expires_in}")


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _spool(directory: Path | None, digest: str, stream: BinaryIO, size: int) -> str:
    """Copy exactly `size` bytes to a temp file while hashing them; return its path only when they are right.

    A body of another length or digest is refused before anything is stored, and its temp file removed.
    """
    try:
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix=".incoming-", delete=False)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create a temp file: {exc.strerror}") from exc
    hasher = hashlib.sha256()
    received = 0
    try:
        with handle:
            while received < size:
                chunk = stream.read(min(CHUNK_SIZE, size - received))
                if not chunk:
                    break
                hasher.update(chunk)
                handle.write(chunk)
                received += len(chunk)
            if received != size or stream.read(1):
                raise BadRequest(f"the body must be exactly {size} bytes", code="size_mismatch",
                                 details={"expected": size, "received_at_least": received})
            if hasher.hexdigest() != digest:
                raise BlobDigestMismatch("the bytes do not hash to the block's SHA-256",
                                         details={"expected": digest, "actual": hasher.hexdigest()})
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        _unlink_quietly(handle.name)
        if isinstance(exc, OSError):
            raise StoreUnavailable(f"cannot write blob: {exc.strerror}") from exc
        raise
    return handle.name


# --------------------------------------------------------------------------------------------- local


class LocalBlobStore:
    """Blobs as files under `root/ab/cd/<digest>`; presigned URLs are HMAC-signed links to functions/blobs."""

    def __init__(self, root: Path, secret: bytes, public_url: str, clock: Callable[[], float] = time.time):
        if not secret:
            raise ValueError("LocalBlobStore needs a non-empty signing secret")
        self.root = Path(root)
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self._tmp = self.root / "tmp"

    def path_for(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[0:2] / digest[2:4] / digest

    # -- writes: temp file in the same file system, fsync, rename; a reader never sees half a blob

    def put(self, digest: str, data: bytes) -> None:
        check_digest(digest)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BlobDigestMismatch("the bytes do not hash to the block's SHA-256",
                                     details={"expected": digest, "actual": actual})
        if self.head(digest) == len(data):
            return  # content addressing: the same name means the same bytes, written atomically before
        self._ensure_dir(self._tmp)
        self._publish(_spool(self._tmp, digest, io.BytesIO(data), len(data)), digest)

    def put_stream(self, digest: str, stream: BinaryIO, size: int) -> None:
        check_digest(digest)
        self._ensure_dir(self._tmp)
        self._publish(_spool(self._tmp, digest, stream, size), digest)

    def _publish(self, temp_name: str, digest: str) -> None:
        target = self.path_for(digest)
        try:
            self._ensure_dir(target.parent)
            os.replace(temp_name, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            _unlink_quietly(temp_name)
            raise StoreUnavailable(f"cannot write blob: {exc.strerror}") from exc

    @staticmethod
    def _ensure_dir(path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {path}: {exc.strerror}") from exc

    # -- reads

    def get(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no block {digest}") from None

    def open_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        _check_range(start, end)
        try:
            handle = open(self.path_for(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no block {digest}") from None
        size = os.fstat(handle.fileno()).st_size
        whole = start == 0 and end is None
        if start >= size and not whole:  # like S3 and HTTP: any explicit range of an empty blob is a 416
            handle.close()
            raise RangeNotSatisfiable(f"range starts at {start} but the block has {size} bytes",
                                      details={"size": size})
        last = size - 1 if end is None else min(end, size - 1)
        return _FileRange(handle, start, last - start + 1)

    def head(self, digest: str) -> int | None:
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError:
            return None

    def stat(self, digest: str) -> tuple[int, float] | None:
        try:
            info = self.path_for(digest).stat()
        except FileNotFoundError:
            return None
        return info.st_size, info.st_mtime_ns / 1e9

    def delete(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)

    def sweep_incoming(self, older_than: float = 3600.0) -> int:
        """Remove temp files a crashed writer left behind; returns how many went."""
        removed = 0
        cutoff = self.clock() - older_than
        for path in self._tmp.glob(".incoming-*") if self._tmp.is_dir() else ():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def check(self) -> None:
        try:
            self._ensure_dir(self._tmp)
            with tempfile.NamedTemporaryFile(dir=self._tmp, prefix=".check-"):
                pass
        except OSError as exc:
            raise StoreUnavailable(f"blob directory {self.root} is not writable: {exc.strerror}") from exc

    # -- presigned URLs

    def presign_put(self, digest: str, size: int, expires_in: int = 3600) -> PresignedRequest:
        check_digest(digest)
        if size < 0 or size > BLOCK_SIZE:
            raise ValueError(f"a block is 0..{BLOCK_SIZE} bytes, got {size}")
        _check_expiry(expires_in)
        expires = int(self.clock()) + expires_in
        query = {"size": str(size), "expires": str(expires)}
        query["sig"] = self.signature("PUT", digest, str(size), expires)
        return PresignedRequest(url=self._url(digest, query), method="PUT", headers={"Content-Length": str(size)})

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest:
        check_digest(digest)
        _check_expiry(expires_in)
        expires = int(self.clock()) + expires_in
        query = {"expires": str(expires)}
        if filename:
            query["filename"] = filename
        query["sig"] = self.signature("GET", digest, "", expires, filename or "")
        return PresignedRequest(url=self._url(digest, query), method="GET", headers={})

    def _url(self, digest: str, query: dict) -> str:
        return f"{self.public_url}/blobs/v1/{digest}?{urlencode(query, quote_via=quote)}"

    def signature(self, method: str, digest: str, size: str, expires: int, filename: str = "") -> str:
        """HMAC-SHA256 over a JSON list, so no field can leak into its neighbour."""
        message = json.dumps([method, digest, size, int(expires), filename], ensure_ascii=True).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verify(self, method: str, digest: str, query: dict) -> dict:
        """Check a presigned URL's query; return its fields. 401 on a bad signature or an expired link."""
        check_digest(digest)
        size = query.get("size", "") if method == "PUT" else ""
        expires = query.get("expires", "")
        filename = query.get("filename", "") if method == "GET" else ""
        given = query.get("sig", "")
        if not _NUMBER.fullmatch(expires) or (method == "PUT" and not _NUMBER.fullmatch(size)):
            raise Unauthorized("the link is not a valid presigned URL", code="invalid_signature")
        expected = self.signature(method, digest, size, int(expires), filename)
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise Unauthorized("the link's signature does not match", code="invalid_signature")
        if int(expires) < self.clock():
            raise Unauthorized("the link has expired; ask for a new one", code="url_expired")
        return {"size": int(size) if size else None, "expires": int(expires), "filename": filename or None}


class _FileRange:
    """Chunks of one open file; `close()` (WSGI servers call it) releases the file even if never iterated."""

    def __init__(self, handle, offset: int, length: int):
        self.handle, self.remaining = handle, length
        handle.seek(offset)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = self.handle.read(min(CHUNK_SIZE, self.remaining)) if self.remaining > 0 else b""
        if not chunk:
            self.close()
            raise StopIteration
        self.remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self.handle.close()


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        return


# ------------------------------------------------------------------------------------------------ S3

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"}


class S3BlobStore:
    """Blobs as objects `blocks/<digest>` in one bucket; S3 itself checks each PUT's SHA-256."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str = "us-east-1",
                 timeout: float = 10.0):
        self.bucket = bucket
        self.region = region
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )

    @staticmethod
    def key(digest: str) -> str:
        return f"blocks/{check_digest(digest)}"

    @staticmethod
    def checksum(digest: str) -> str:
        """The x-amz-checksum-sha256 value: base64 of the raw 32-byte digest."""
        return base64.b64encode(bytes.fromhex(check_digest(digest))).decode("ascii")

    def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (start-up); an existing one of ours is fine."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._translate(exc, None) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, None) from exc
        args = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**args)
        except ClientError as exc:
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._translate(exc, None) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, None) from exc

    def put(self, digest: str, data: bytes) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != check_digest(digest):
            raise BlobDigestMismatch("the bytes do not hash to the block's SHA-256",
                                     details={"expected": digest, "actual": actual})
        self._call(digest, "put_object", Bucket=self.bucket, Key=self.key(digest), Body=data,
                   ChecksumSHA256=self.checksum(digest))

    def put_stream(self, digest: str, stream: BinaryIO, size: int) -> None:
        check_digest(digest)
        name = _spool(None, digest, stream, size)
        try:
            with open(name, "rb") as handle:
                self._call(digest, "put_object", Bucket=self.bucket, Key=self.key(digest), Body=handle,
                           ContentLength=size, ChecksumSHA256=self.checksum(digest))
        finally:
            _unlink_quietly(name)

    def get(self, digest: str) -> bytes:
        response = self._call(digest, "get_object", Bucket=self.bucket, Key=self.key(digest))
        return b"".join(self._iterate(digest, response["Body"]))

    def open_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        _check_range(start, end)
        args = {"Bucket": self.bucket, "Key": self.key(digest)}
        if start or end is not None:  # "bytes=0-" on an empty object is a 416 in S3; the whole blob is not
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        response = self._call(digest, "get_object", **args)
        return self._iterate(digest, response["Body"])

    def _iterate(self, digest: str, body) -> Iterator[bytes]:
        try:
            with body:
                yield from body.iter_chunks(CHUNK_SIZE)
        except (BotoCoreError, ClientError) as exc:  # a read timeout or reset mid-stream
            raise self._translate(exc, digest) from exc

    def head(self, digest: str) -> int | None:
        try:
            response = self._call(digest, "head_object", Bucket=self.bucket, Key=self.key(digest))
        except BlobNotFound:
            return None
        return response["ContentLength"]

    def stat(self, digest: str) -> tuple[int, float] | None:
        """S3's Last-Modified has whole seconds: a rewrite within the same second does not show."""
        try:
            response = self._call(digest, "head_object", Bucket=self.bucket, Key=self.key(digest))
        except BlobNotFound:
            return None
        return response["ContentLength"], response["LastModified"].timestamp()

    def delete(self, digest: str) -> None:
        self._call(digest, "delete_object", Bucket=self.bucket, Key=self.key(digest))

    def check(self) -> None:
        self._call(None, "head_bucket", Bucket=self.bucket)

    def presign_put(self, digest: str, size: int, expires_in: int = 3600) -> PresignedRequest:
        """A PUT URL that signs the SHA-256 and the length, so S3 refuses any other bytes (BadDigest)."""
        if size < 0 or size > BLOCK_SIZE:
            raise ValueError(f"a block is 0..{BLOCK_SIZE} bytes, got {size}")
        _check_expiry(expires_in)
        checksum = self.checksum(digest)
        url = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.key(digest), "ChecksumSHA256": checksum,
                    "ContentLength": size},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return PresignedRequest(url=url, method="PUT",
                                headers={"Content-Length": str(size), "x-amz-checksum-sha256": checksum})

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest:
        _check_expiry(expires_in)
        params = {"Bucket": self.bucket, "Key": self.key(digest)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        url = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in, HttpMethod="GET")
        return PresignedRequest(url=url, method="GET", headers={})

    def _call(self, digest: str | None, operation: str, **kwargs):
        try:
            return getattr(self.client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, digest) from exc

    def _translate(self, exc: BotoCoreError | ClientError, digest: str | None) -> ApiError:
        """botocore's errors in our terms; anything not about the blob itself means the store is unwell."""
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if digest and code in _NOT_FOUND:
                return BlobNotFound(f"no block {digest}")
            if code in _BAD_DIGEST:
                return BlobDigestMismatch("the bytes do not hash to the block's SHA-256")
            if code == "InvalidRange":
                return RangeNotSatisfiable("the range lies beyond the end of the block")
            if code in ("NoSuchBucket", "404", "NotFound"):
                return StoreUnavailable(f"bucket {self.bucket} does not exist")
            return StoreUnavailable(f"object store refused the request: {code}")
        return StoreUnavailable(f"object store unreachable: {type(exc).__name__}")


def _error_code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# ----------------------------------------------------------------------------------------- selection


def make_store(settings, secret: bytes, http_timeout: float = 10.0, ensure: bool = True) -> BlobStore:
    """Pick the backend named by PCLOUD_STORE_URL; fail at start-up on a bad URL.

    With `ensure`, an S3 bucket that does not exist yet is created (StoreUnavailable when S3 is down).
    """
    url = settings.store_url or f"file://{Path(settings.data_dir).resolve() / 'blobs'}"
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.query:
            raise SettingsError(f"PCLOUD_STORE_URL must be file:///ABSOLUTE/PATH, got {url!r}")
        return LocalBlobStore(Path(unquote(parts.path)), secret=secret, public_url=settings.public_url)
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket) or parts.path not in ("", "/"):
            raise SettingsError(f"PCLOUD_STORE_URL must be s3://BUCKET?endpoint=URL&region=NAME, got {url!r}")
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise SettingsError(f"PCLOUD_STORE_URL has a malformed query: {url!r}") from None
        unknown = set(query) - {"endpoint", "region"}
        if unknown or any(len(v) != 1 for v in query.values()):
            raise SettingsError(f"PCLOUD_STORE_URL accepts endpoint= and region= once each, got {url!r}")
        endpoint = query.get("endpoint", [""])[0] or None
        if endpoint is not None:
            ep = urlsplit(endpoint)
            if ep.scheme not in ("http", "https") or not ep.netloc:
                raise SettingsError(f"PCLOUD_STORE_URL endpoint must be an http(s) URL, got {endpoint!r}")
        region = query.get("region", [""])[0] or "us-east-1"
        if not re.fullmatch(r"[a-z0-9-]+", region):
            raise SettingsError(f"PCLOUD_STORE_URL region looks wrong: {region!r}")
        store = S3BlobStore(bucket, endpoint_url=endpoint, region=region, timeout=http_timeout)
        if ensure:
            store.ensure_bucket()
        return store
    raise SettingsError(f"PCLOUD_STORE_URL must be file://PATH or s3://BUCKET?..., got {url!r}")
