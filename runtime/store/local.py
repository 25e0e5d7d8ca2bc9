"""`LocalBlobStore`: blobs as files under PCLOUD_DATA_DIR; presigned URLs are served by functions/blobs."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from runtime.errors import (
    RangeNotSatisfiable,
    Unauthorized,
)
from runtime.store.base import (
    _NUMBER,
    BLOCK_SIZE,
    CHUNK_SIZE,
    BlobDigestMismatch,
    BlobNotFound,
    PresignedRequest,
    StoreUnavailable,
    _check_expiry,
    _check_range,
    _spool,
    _unlink_quietly,
    check_digest,
    check_upload_id,
)


class LocalBlobStore:
    """Blobs as files under `root/ab/cd/<digest>`; presigned URLs are HMAC-signed links to functions/blobs."""

    def __init__(self, root: Path, secret: bytes, public_url: str, clock: Callable[[], float] = time.time,
                 name: str | None = None):
        if not secret:
            raise ValueError("LocalBlobStore needs a non-empty signing secret")
        self.root = Path(root)
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.name = name  # a named store (PCLOUD_STORES) says so in its links: `store=` picks it in functions/blobs
        self._tmp = self.root / "tmp"

    def path_for(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[0:2] / digest[2:4] / digest

    def staged_path(self, upload_id: str, digest: str) -> Path:
        return self.root / "staging" / check_upload_id(upload_id) / check_digest(digest)

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

    def put_staged(self, upload_id: str, digest: str, stream: BinaryIO, size: int) -> None:
        """A PUT through an upload's link: checked like any block, kept apart until `claim`."""
        target = self.staged_path(upload_id, digest)
        self._ensure_dir(self._tmp)
        self._publish(_spool(self._tmp, digest, stream, size), digest, target)

    def claim(self, upload_id: str, digest: str, size: int) -> bool:
        staged, target = self.staged_path(upload_id, digest), self.path_for(digest)
        try:
            staged_size = staged.stat().st_size
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._unreadable(exc) from exc
        if staged_size != size:
            _unlink_quietly(str(staged))
            return False
        if self.head(digest) == size:
            _unlink_quietly(str(staged))  # content addressing: the shared block already has these bytes
        else:
            try:
                self._ensure_dir(target.parent)
                os.replace(staged, target)
                _fsync_dir(target.parent)
            except FileNotFoundError:  # a concurrent claim of the same upload moved it first
                return self.head(digest) == size
            except OSError as exc:
                raise StoreUnavailable(f"cannot move a staged blob: {exc.strerror}") from exc
        try:
            staged.parent.rmdir()
        except OSError:
            pass  # other blocks of the upload are still staged
        return True

    def discard_staged(self, upload_id: str) -> None:
        shutil.rmtree(self.root / "staging" / check_upload_id(upload_id), ignore_errors=True)

    def _publish(self, temp_name: str, digest: str, target: Path | None = None) -> None:
        target = target or self.path_for(digest)
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

    def _unreadable(self, exc: OSError) -> StoreUnavailable:
        """A disk that fails (EIO, a path that is no directory any more) is a store that is down, not a 500."""
        return StoreUnavailable(f"blob directory {self.root} cannot be read: {exc.strerror or exc}")

    def get(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no block {digest}") from None
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def open_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        _check_range(start, end)
        try:
            handle = open(self.path_for(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no block {digest}") from None
        except OSError as exc:
            raise self._unreadable(exc) from exc
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
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def stat(self, digest: str) -> tuple[int, float] | None:
        try:
            info = self.path_for(digest).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return info.st_size, info.st_mtime_ns / 1e9

    def delete(self, digest: str) -> None:
        try:
            self.path_for(digest).unlink(missing_ok=True)
        except OSError as exc:
            raise self._unreadable(exc) from exc

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

    def presign_put(self, digest: str, size: int, expires_in: int = 3600,
                    upload_id: str | None = None) -> PresignedRequest:
        check_digest(digest)
        if size < 0 or size > BLOCK_SIZE:
            raise ValueError(f"a block is 0..{BLOCK_SIZE} bytes, got {size}")
        _check_expiry(expires_in)
        expires = int(self.clock()) + expires_in
        query = {"size": str(size), "expires": str(expires)}
        if upload_id is not None:
            query["upload"] = check_upload_id(upload_id)
        query["sig"] = self.signature("PUT", digest, str(size), expires, upload=upload_id)
        return PresignedRequest(url=self._url(digest, query), method="PUT", headers={"Content-Length": str(size)})

    def presign_puts(self, blocks: list[tuple[str, int]], expires_in: int = 3600,
                     upload_id: str | None = None) -> list[PresignedRequest]:
        return [self.presign_put(digest, size, expires_in, upload_id) for digest, size in blocks]

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
        if self.name:
            query = {**query, "store": self.name}
        return f"{self.public_url}/blobs/v1/{digest}?{urlencode(query, quote_via=quote)}"

    def signature(self, method: str, digest: str, size: str, expires: int, filename: str = "",
                  upload: str | None = None) -> str:
        """HMAC-SHA256 over a JSON list, so no field can leak into its neighbour; an upload-bound PUT signs
        its upload id too (so the link cannot be replayed for another upload)."""
        fields = [method, digest, size, int(expires), filename] + ([upload] if upload is not None else [])
        message = json.dumps(fields, ensure_ascii=True).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verify(self, method: str, digest: str, query: dict) -> dict:
        """Check a presigned URL's query; return its fields. 401 on a bad signature or an expired link."""
        check_digest(digest)
        size = query.get("size", "") if method == "PUT" else ""
        expires = query.get("expires", "")
        filename = query.get("filename", "") if method == "GET" else ""
        upload = query.get("upload") if method == "PUT" else None
        given = query.get("sig", "")
        if not _NUMBER.fullmatch(expires) or (method == "PUT" and not _NUMBER.fullmatch(size)):
            raise Unauthorized("the link is not a valid presigned URL", code="invalid_signature")
        if upload is not None:
            check_upload_id(upload)
        expected = self.signature(method, digest, size, int(expires), filename, upload=upload)
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise Unauthorized("the link's signature does not match", code="invalid_signature")
        if int(expires) < self.clock():
            raise Unauthorized("the link has expired; ask for a new one", code="url_expired")
        return {"size": int(size) if size else None, "expires": int(expires), "filename": filename or None,
                "upload": upload}


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
