"""Presigned block transfers for the local store: check the link, then stream bytes in or out."""

from __future__ import annotations

from typing import BinaryIO

from runtime.errors import BadRequest, NotFound
from runtime.store import BlobNotFound, BlobStore, LocalBlobStore, ReplicatedBlobStore, StoreUnavailable


def local(store: BlobStore, name: str | None = None) -> LocalBlobStore:
    """The local store a link is for: with several stores, the one its `store=` names (default: the first)."""
    if isinstance(store, ReplicatedBlobStore):
        store = store.local_backend(name)
    if not isinstance(store, LocalBlobStore):
        raise NotFound("blocks are served by the object store directly; ask for a new presigned URL")
    return store


def receive(store: BlobStore, digest: str, query: dict, content_length: int | None, body: BinaryIO) -> int:
    """Store the body under `digest` when the link is valid, the length is the signed one and the bytes hash right.

    The body streams to a temp file; a refused body leaves nothing behind. A named store whose disk fails is
    marked down (503 to the client), so the links signed next (GET …/urls, a new negotiation) go elsewhere.
    """
    replicated = store if isinstance(store, ReplicatedBlobStore) else None
    store = local(store, query.get("store"))
    try:
        return _receive(store, digest, query, content_length, body)
    except StoreUnavailable as exc:
        if replicated is not None:
            replicated.mark_down(query.get("store") or replicated.names[0], str(exc))
        raise


def _receive(store: LocalBlobStore, digest: str, query: dict, content_length: int | None, body: BinaryIO) -> int:
    signed = store.verify("PUT", digest, query)
    size = signed["size"]
    if content_length is None:
        raise BadRequest(f"send Content-Length: {size}", code="size_mismatch", details={"expected": size})
    if content_length != size:
        raise BadRequest(f"the URL was signed for {size} bytes, the body has {content_length}",
                         code="size_mismatch", details={"expected": size, "received": content_length})
    if signed["upload"]:
        store.put_staged(signed["upload"], digest, body, size)  # proves possession only for that upload
    else:
        store.put_stream(digest, body, size)
    return size


def locate(store: BlobStore, digest: str, query: dict) -> tuple[int, str | None]:
    """(size, filename) of a block behind a valid download link."""
    store = local(store, query.get("store"))
    signed = store.verify("GET", digest, query)
    size = store.head(digest)
    if size is None:
        raise BlobNotFound(f"no block {digest}")
    return size, signed["filename"]
