"""The BlobStore interface, its errors and the checks every backend shares."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote

from runtime.errors import (
    BadRequest,
    NotFound,
    RangeNotSatisfiable,
    Unavailable,
)

CHUNK_SIZE = 64 * 1024
BLOCK_SIZE = 4 * 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the S3 limit; the local store keeps the same one
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_NUMBER = re.compile(r"^[0-9]{1,12}$")  # ASCII digits only: "²".isdigit() is True
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_UPLOAD_ID = re.compile(r"^[0-9a-zA-Z_-]{1,64}$")


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

    def presign_put(self, digest: str, size: int, expires_in: int = 3600,
                    upload_id: str | None = None) -> PresignedRequest:
        """With `upload_id`, the PUT lands in that upload's own staging area, not in the shared block: only
        `claim` moves it there, so only the uploader's own PUT proves possession (CONTRACT §3)."""

    def presign_puts(self, blocks: list[tuple[str, int]], expires_in: int = 3600,
                     upload_id: str | None = None) -> list[PresignedRequest]:
        """`presign_put` for each `(digest, size)`, in order: one negotiation signs up to 10,000 at once."""

    def claim(self, upload_id: str, digest: str, size: int) -> bool:
        """Move what this upload staged for `digest` into the shared block; True when its PUT delivered
        exactly these bytes since the last claim (the caller records the proof: a second claim is False)."""

    def discard_staged(self, upload_id: str) -> None:
        """Drop whatever an upload staged and never claimed (it expired)."""

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest: ...

    def check(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached (readiness)."""


def check_digest(digest: str) -> str:
    """Refuse anything but 64 lowercase hex chars: the digest becomes a file name or an object key."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BadRequest("a block hash is 64 lowercase hex characters (SHA-256)", code="invalid_hash")
    return digest


def check_upload_id(upload_id: str) -> str:
    """An upload id becomes a directory name or a key prefix: letters, digits, '-' and '_' only."""
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise BadRequest("not an upload id", code="invalid_upload_id")
    return upload_id


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


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        return
