"""`ReplicatedBlobStore`: one BlobStore over several named stores (PCLOUD_STORE_URL as `default`, PCLOUD_STORES).

It is the I/O half of the replica policy (issue 19); the policy half — which block should be where, repair,
trim, scrub — lives in functions/files/replication.py and talks to the stores by name through this class.

- Server-side writes land on the *ingest* store: the first healthy store in configured order that can take
  presigned PUTs (the default store unless it is down). An upload's presigned PUTs go where its folder's policy
  acknowledges a block (`sign_puts`): the first store the policy names that is up and presigns (a store that has
  not answered a check within `probe_seconds` is checked first), else the next named one, else the ingest store.
  `claim` asks the stores the links were signed for first, then every other one, so an upload whose links were
  signed before a store went away still commits where its bytes went.
- Reads never serve bytes that fail their hash: a block is read whole from one store, hashed, and only then
  sliced and served; a copy that is missing, unreachable or corrupt is skipped for the next store (corrupt
  copies are reported through `on_corrupt`). When no store has good bytes, `fallback(digest)` may supply them
  (functions/files/sealing.py decrypts an at-rest copy); otherwise 502 `block_corrupt` when some copy was
  corrupt, else 404 / 503.
- A store that fails with StoreUnavailable is skipped for `retry_seconds` (a small circuit breaker), so one
  dead disk or bucket costs one timeout, not one per request. `check()` passes while any store works.
- Per-user stores (a person's connected Google Drive, `gdrive:<connection id>`) are not in `names`: `resolver`
  finds them by name and `locate(address)` says which of them hold a copy, so reads fall back to them and
  deletes reach them; they never take writes that were not addressed to them (`put_to`), never ingest.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from runtime.errors import ApiError, RangeNotSatisfiable
from runtime.store.base import (
    CHUNK_SIZE,
    BlobNotFound,
    BlobStore,
    PresignedRequest,
    StoreUnavailable,
    _check_range,
    check_digest,
)

DEFAULT = "default"


class BlobCorrupt(ApiError):
    """Every copy that could be read failed its SHA-256: nothing is served."""

    status, code = 502, "block_corrupt"


class ReplicatedBlobStore:
    """Several named BlobStores behind the BlobStore interface; `backends` in preference order."""

    def __init__(self, backends: dict[str, BlobStore], retry_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, probe_seconds: float = 5.0):
        if not backends:
            raise ValueError("ReplicatedBlobStore needs at least one store")
        self.backends = dict(backends)
        self.names = list(self.backends)
        self.retry_seconds = retry_seconds
        self.probe_seconds = probe_seconds
        self.clock = clock
        self._down: dict[str, tuple[float, str]] = {}
        self._answered: dict[str, float] = {}  # when each store last passed a check (see `usable`)
        self._lock = threading.Lock()
        self.fallback: Callable[[str], bytes | None] | None = None
        self.on_corrupt: Callable[[str, str], None] | None = None
        self.resolver: Callable[[str], BlobStore | None] | None = None  # per-user stores by name
        self.locate: Callable[[str], list[str]] | None = None  # per-user stores known to hold an address

    # -- health

    def healthy(self, name: str) -> bool:
        if name not in self.backends and not self.knows(name):
            return False
        with self._lock:
            down = self._down.get(name)
            if down is None:
                return True
            if self.clock() >= down[0]:
                del self._down[name]  # half-open: the next call tries it again
                return True
            return False

    def mark_down(self, name: str, reason: str) -> None:
        with self._lock:
            self._down[name] = (self.clock() + self.retry_seconds, reason)

    def mark_up(self, name: str) -> None:
        with self._lock:
            self._down.pop(name, None)
            self._answered[name] = self.clock()

    def presigns(self, name: str) -> bool:
        """Whether clients can PUT to this store directly (a cloud drive store cannot: it never acknowledges)."""
        backend = self.backends[name]
        return bool(getattr(backend, "presigns", True)) and callable(getattr(backend, "presign_puts", None))

    def usable(self, name: str) -> bool:
        """Up as far as we know *now*: healthy, and it passed a check within `probe_seconds` (else it is checked
        here). Signing a link is local work, so a store acknowledging uploads must be known up, not merely not
        known down; one check per store per `probe_seconds`, whatever the upload rate."""
        if not self.healthy(name):
            return False
        with self._lock:
            answered = self._answered.get(name)
        if answered is not None and self.clock() - answered < self.probe_seconds:
            return True
        try:
            self.backends[name].check()
        except StoreUnavailable as exc:
            self.mark_down(name, str(exc))
            return False
        self.mark_up(name)
        return True

    def healthy_names(self) -> list[str]:
        return [n for n in self.names if self.healthy(n)]

    def status(self) -> list[dict]:
        """Each store's state, checked now (the admin API and /readyz details)."""
        out = []
        for name, backend in self.backends.items():
            try:
                backend.check()
            except StoreUnavailable as exc:
                self.mark_down(name, exc.message if hasattr(exc, "message") else str(exc))
                out.append({"name": name, "kind": _kind(backend), "healthy": False, "error": str(exc)})
                continue
            self.mark_up(name)
            out.append({"name": name, "kind": _kind(backend), "healthy": True, "error": None})
        return out

    def check(self) -> None:
        errors = []
        for name, backend in self.backends.items():
            try:
                backend.check()
                self.mark_up(name)
                return
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
                errors.append(f"{name}: {exc}")
        raise StoreUnavailable("no store is reachable: " + "; ".join(errors))

    def backend(self, name: str) -> BlobStore:
        found = self.backends.get(name) or (self.resolver(name) if self.resolver is not None else None)
        if found is None:
            raise KeyError(f"no store named {name!r}")
        return found

    def knows(self, name: str) -> bool:
        """A configured store, or a per-user one the resolver can reach now (a drive still connected)."""
        return name in self.backends or (self.resolver is not None and self.resolver(name) is not None)

    def _backend(self, name: str) -> BlobStore:
        try:
            return self.backend(name)
        except KeyError:
            raise StoreUnavailable(f"no store named {name!r} (a drive that was disconnected?)") from None

    def _located(self, digest: str) -> list[str]:
        return [n for n in self.locate(digest) if n not in self.backends] if self.locate is not None else []

    @property
    def ingest(self) -> str:
        """Where new bytes go: the first healthy store that takes presigned PUTs (the default one while it works)."""
        presigning = [n for n in self.names if self.presigns(n)] or self.names
        for name in presigning:
            if self.healthy(name):
                return name
        return presigning[0]

    def _attempt(self, names: list[str], call: Callable[[str, BlobStore], object]):
        """`call` on each store in turn until one answers; StoreUnavailable marks the store down."""
        last: StoreUnavailable | None = None
        for name in names:
            try:
                return call(name, self.backends[name])
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
                last = exc
        raise last or StoreUnavailable("no store is reachable")

    def _writable(self) -> list[str]:
        healthy = self.healthy_names()
        return healthy or list(self.names)

    # -- writes

    def put(self, digest: str, data: bytes) -> None:
        self._attempt(self._writable(), lambda _, b: b.put(digest, data))

    def put_stream(self, digest: str, stream: BinaryIO, size: int) -> None:
        name = self.ingest  # a stream cannot be replayed to a second store
        try:
            self.backends[name].put_stream(digest, stream, size)
        except StoreUnavailable as exc:
            self.mark_down(name, str(exc))
            raise

    def put_to(self, name: str, digest: str, data: bytes) -> None:
        """One copy on one named store (repair)."""
        try:
            self._backend(name).put(digest, data)
        except StoreUnavailable as exc:
            self.mark_down(name, str(exc))
            raise

    def put_staged(self, upload_id: str, digest: str, stream: BinaryIO, size: int) -> None:
        """What a local store's presigned PUT does (tests and the blobs function call it on the ingest store)."""
        self.backends[self.ingest].put_staged(upload_id, digest, stream, size)

    def presign_put(self, digest: str, size: int, expires_in: int = 3600,
                    upload_id: str | None = None) -> PresignedRequest:
        return self._attempt([n for n in self._writable() if self.presigns(n)] or self._writable(),
                             lambda _, b: b.presign_put(digest, size, expires_in=expires_in, upload_id=upload_id))

    def presign_puts(self, blocks: list[tuple[str, int]], expires_in: int = 3600,
                     upload_id: str | None = None) -> list[PresignedRequest]:
        return self.sign_puts(blocks, expires_in=expires_in, upload_id=upload_id)[2]

    def sign_puts(self, blocks: list[tuple[str, int]], expires_in: int = 3600, upload_id: str | None = None,
                  preferred: list[str] | None = None) -> tuple[str, bool, list[PresignedRequest]]:
        """(store, fallback, PUTs): the links signed by one store, the first of `preferred` (a policy's stores,
        in order) that is usable and presigns, else the ingest order. `fallback` is true when a policy named
        stores and the first of them that presigns could not take the upload. Each store signs with its own
        signer (S3: the batch SigV4 signer; a named local store: its own key and `store=` in the link)."""
        named = [n for n in dict.fromkeys(preferred or []) if n in self.backends and self.presigns(n)]
        rest = [n for n in self._writable() if n not in named and self.presigns(n)]
        last: StoreUnavailable | None = None
        skipped: list[str] = []

        def candidates():
            for name in named:  # checked lazily: the first usable one ends the search
                if self.usable(name):
                    yield name
                else:
                    skipped.append(name)
            yield from rest
            yield from skipped[:1] if not rest else ()  # nothing else: the first named one, as before

        for name in candidates():
            try:
                signed = self.backends[name].presign_puts(blocks, expires_in=expires_in, upload_id=upload_id)
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
                last = exc
                continue
            return name, bool(named) and name != named[0], signed
        raise last or StoreUnavailable("no store can take uploads")

    def claim(self, upload_id: str, digest: str, size: int, prefer: list[str] | None = None) -> bool:
        """The staged bytes are on a store the upload's links were signed for (`prefer`, asked first) or on
        whichever store was ingest when an older link was signed: ask each."""
        order = self._writable()
        first = [n for n in dict.fromkeys(prefer or []) if n in order]
        for name in first + [n for n in order if n not in first]:
            try:
                if self.backends[name].claim(upload_id, digest, size):
                    return True
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
        return False

    def discard_staged(self, upload_id: str) -> None:
        for name in self.names:
            try:
                self.backends[name].discard_staged(upload_id)
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))

    def delete(self, digest: str) -> None:
        """Every copy (per-user stores too); a store that is down keeps its copy (the placement scan trims it
        when it is back)."""
        for name in self.names + self._located(digest):
            self.delete_from(name, digest)

    def delete_from(self, name: str, digest: str) -> bool:
        try:
            self._backend(name).delete(digest)
            return True
        except BlobNotFound:
            return True
        except StoreUnavailable as exc:
            self.mark_down(name, str(exc))
            return False

    # -- reads

    def has(self, name: str, digest: str) -> bool | None:
        """True/False, or None when the store cannot say (down)."""
        try:
            return self._backend(name).head(digest) is not None
        except StoreUnavailable as exc:
            self.mark_down(name, str(exc))
            return None

    def read_raw(self, name: str, digest: str) -> bytes:
        """The bytes one store holds, unchecked (the scrubber hashes them itself)."""
        try:
            return self._backend(name).get(digest)
        except StoreUnavailable as exc:
            self.mark_down(name, str(exc))
            raise

    def sources(self, digest: str) -> list[str]:
        """The healthy stores a copy of `digest` may be on: every configured one, then per-user ones holding it."""
        return [n for n in self.names + self._located(digest) if self.healthy(n)]

    def read_verified(self, digest: str, prefer: list[str] | None = None,
                      skip: tuple[str, ...] = ()) -> tuple[str | None, bytes]:
        """(store name, bytes) of the first copy that hashes right; `fallback` (name None) when none does (it may
        raise BlobCorrupt itself when it knows of copies that all fail)."""
        check_digest(digest)
        order = list(prefer or []) + [n for n in self.names if n not in (prefer or [])]
        order = [n for n in order if n not in skip]
        order = [n for n in order if self.healthy(n)] + [n for n in order if not self.healthy(n)]
        corrupt, unavailable = [], []
        tried = set(order) | set(skip)
        for name in _then(order, lambda: [n for n in self._located(digest) if n not in tried and self.healthy(n)]):
            try:
                data = self._backend(name).get(digest)
            except BlobNotFound:
                continue
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
                unavailable.append(name)
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                return name, data
            corrupt.append(name)
            if self.on_corrupt is not None:
                self.on_corrupt(name, digest)
        if self.fallback is not None:
            data = self.fallback(digest)
            if data is not None and hashlib.sha256(data).hexdigest() == digest:
                return None, data
        if corrupt:
            raise BlobCorrupt("every readable copy of the block fails its SHA-256; nothing is served",
                              details={"hash": digest, "corrupt_on": corrupt})
        if unavailable:
            raise StoreUnavailable(f"block {digest} is only on stores that are down: {', '.join(unavailable)}")
        raise BlobNotFound(f"no block {digest}")

    def get(self, digest: str) -> bytes:
        return self.read_verified(digest)[1]

    def open_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The verified block, sliced: the whole block is read and hashed before the first byte goes out."""
        _check_range(start, end)
        data = self.get(digest)
        size = len(data)
        if start >= size and not (start == 0 and end is None):
            raise RangeNotSatisfiable(f"range starts at {start} but the block has {size} bytes",
                                      details={"size": size})
        last = size - 1 if end is None else min(end, size - 1)
        view = memoryview(data)[start:last + 1]
        return (bytes(view[i:i + CHUNK_SIZE]) for i in range(0, len(view), CHUNK_SIZE))

    def head(self, digest: str) -> int | None:
        for name in self.healthy_names():
            try:
                size = self.backends[name].head(digest)
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
                continue
            if size is not None:
                return size
        return None

    def stat(self, digest: str) -> tuple[int, float] | None:
        for name in self.healthy_names():
            try:
                found = self.backends[name].stat(digest)
            except StoreUnavailable as exc:
                self.mark_down(name, str(exc))
                continue
            if found is not None:
                return found
        return None

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest:
        """A link to a store that has the block (a presigned GET is not hash-checked by us: prefer streaming)."""
        for name in self.healthy_names():
            if self.has(name, digest):
                return self.backends[name].presign_get(digest, expires_in=expires_in, filename=filename)
        return self.backends[self.ingest].presign_get(digest, expires_in=expires_in, filename=filename)  # a 404 link

    def sweep_incoming(self, older_than: float = 3600.0) -> int:
        return sum(b.sweep_incoming(older_than) for b in self.backends.values() if hasattr(b, "sweep_incoming"))

    def local_backend(self, name: str | None):
        """The local store a presigned link names (`store=` in its query; none means the default)."""
        return self.backends.get(name) if name else self.backends[self.names[0]]


def _then(first: list[str], more: Callable[[], list[str]]) -> Iterator[str]:
    """`first`, then `more()` — asked only when `first` did not do (a per-user store costs a lookup)."""
    yield from first
    yield from more()


def _kind(backend) -> str:
    return type(backend).__name__.removesuffix("BlobStore").lower() or "store"
