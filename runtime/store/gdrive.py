"""`DriveBlobStore`: blocks as files in the user's own Google Drive (issue 19, seed 002's Cloud service), a
replica target only — reads and writes always go through our servers.

- Each block is a file named by its address (the SHA-256 of what is stored: plaintext, or for an at-rest
  folder the sealed ciphertext) inside one app folder ("PCloud blocks") of the user's drive. The scope is
  `drive.file`: the app sees only the files it made, nothing else of the person's drive.
- HTTP goes through Authlib's OAuth2Session: an access token about to expire is refreshed before the call, one
  refused with 401 is refreshed once and the call retried; every new token goes to `on_token` (the caller
  keeps it encrypted). Every call carries a timeout.
- Errors as the other backends: a missing block is BlobNotFound, bytes of another digest BlobDigestMismatch
  (checked before anything is sent), everything else StoreUnavailable — `DriveAccessRevoked` when Google no
  longer honours the refresh token (the person removed our access): a replica that is away, never a 500.
- No presigned URLs (Drive has none a phone could PUT a block to under our name): `presigns` is False, so the
  replicated store never makes it the ingest store and presign_* raise PresignUnsupported.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session

from runtime.errors import ApiError, RangeNotSatisfiable
from runtime.store.base import (
    CHUNK_SIZE,
    BlobDigestMismatch,
    BlobNotFound,
    PresignedRequest,
    StoreUnavailable,
    _check_range,
    _spool,
    _unlink_quietly,
    check_digest,
)

SCOPE = "https://www.googleapis.com/auth/drive.file"
FOLDER_NAME = "PCloud blocks"
FOLDER_MIME = "application/vnd.google-apps.folder"
PREFIX = "gdrive:"  # a per-user store's name: gdrive:<connection id> (PCLOUD_STORES names have no colon)
_ID_CACHE = 4096


class DriveAccessRevoked(StoreUnavailable):
    """Google refuses our refresh token: the person revoked the app's access, or the grant expired."""

    code = "drive_access_revoked"


class PresignUnsupported(ApiError):
    status, code = 501, "presign_unsupported"


def is_user_store(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def drive_session(client_id: str, client_secret: str, token: dict, token_endpoint: str, timeout: float,
                  on_token: Callable[[dict], None] | None = None) -> OAuth2Session:
    """An OAuth2Session that refreshes `token` at `token_endpoint` and hands every new token to `on_token`."""

    def update_token(new: dict, refresh_token: str | None = None, access_token: str | None = None) -> None:
        if on_token is not None:
            on_token(dict(new))

    return OAuth2Session(client_id, client_secret, token=dict(token), token_endpoint=token_endpoint,
                         token_endpoint_auth_method="client_secret_post", update_token=update_token,
                         scope=SCOPE, default_timeout=timeout)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _epoch(rfc3339: str | None) -> float:
    if not rfc3339:
        return 0.0
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class DriveBlobStore:
    """One user's connected drive as a BlobStore (for replicas; `presigns` False)."""

    presigns = False

    def __init__(self, session: OAuth2Session, *, api_url: str, upload_url: str, timeout: float = 10.0,
                 folder_id: str | None = None, folder_name: str = FOLDER_NAME, name: str | None = None,
                 on_folder: Callable[[str], None] | None = None, on_revoked: Callable[[str], None] | None = None):
        self.session = session
        self.api_url = api_url.rstrip("/")
        self.upload_url = upload_url.rstrip("/")
        self.timeout = timeout
        self.folder_id = folder_id
        self.folder_name = folder_name
        self.name = name or "gdrive"
        self.on_folder = on_folder
        self.on_revoked = on_revoked  # told once Google refuses the refresh token (the connection is dead)
        self._ids: OrderedDict[str, str] = OrderedDict()  # address -> Drive file id (saves one lookup per read)
        self._lock = threading.Lock()  # the id cache
        self._folder_lock = threading.Lock()  # one folder lookup at a time (its calls may refresh the token)
        self._refresh_lock = threading.Lock()

    # -- HTTP

    def _call(self, method: str, url: str, *, expect: tuple[int, ...] = (200,), missing_ok: bool = False,
              **kwargs) -> requests.Response | None:
        """One Drive call: refreshed once on 401; None for a 404 when `missing_ok`; else StoreUnavailable."""
        kwargs.setdefault("timeout", self.timeout)
        for attempt in (1, 2):
            try:
                resp = self.session.request(method, url, **kwargs)
            except AuthlibBaseError as exc:  # the refresh before the call was refused
                raise self._refused(exc) from None
            except requests.RequestException as exc:
                raise StoreUnavailable(f"{self.name}: Google Drive did not answer ({exc.__class__.__name__})") \
                    from None
            if resp.status_code == 401 and attempt == 1:
                self._refresh()
                continue
            break
        if resp.status_code in expect:
            return resp
        if resp.status_code == 404 and missing_ok:
            return None
        raise StoreUnavailable(f"{self.name}: Google Drive answered {resp.status_code} "
                               f"({_reason(resp)}) to {method} {url.split('?', 1)[0]}")

    def _refresh(self) -> None:
        with self._refresh_lock:
            try:
                self.session.refresh_token(self.session.metadata.get("token_endpoint"), timeout=self.timeout)
            except AuthlibBaseError as exc:
                raise self._refused(exc) from None
            except requests.RequestException as exc:
                raise StoreUnavailable(f"{self.name}: Google's token endpoint did not answer "
                                       f"({exc.__class__.__name__})") from None
            except ValueError as exc:  # a non-JSON body, e.g. an HTML 5xx page
                raise StoreUnavailable(f"{self.name}: Google's token endpoint gave no token: {exc}") from None

    def _refused(self, exc: AuthlibBaseError) -> StoreUnavailable:
        error = getattr(exc, "error", "") or ""
        if error in ("invalid_grant", "unauthorized_client", "invalid_client", "token_invalid", "missing_token"):
            if self.on_revoked is not None:
                self.on_revoked(error)
            return DriveAccessRevoked(f"{self.name}: Google refused the refresh token ({error}); reconnect the drive",
                                      details={"store": self.name, "error": error})
        return StoreUnavailable(f"{self.name}: Google's token endpoint answered {error or exc}")

    # -- the app folder and file ids

    def folder(self) -> str:
        """The app folder's id, found or made on first use."""
        if self.folder_id:
            return self.folder_id
        with self._folder_lock:
            if self.folder_id:
                return self.folder_id
            q = f"name = '{_quote(self.folder_name)}' and mimeType = '{FOLDER_MIME}' and 'root' in parents " \
                "and trashed = false"
            found = self._call("GET", f"{self.api_url}/files", params={"q": q, "fields": "files(id)",
                                                                        "pageSize": 10, "spaces": "drive"})
            files = found.json().get("files") or []
            if files:
                folder_id = files[0]["id"]
            else:
                made = self._call("POST", f"{self.api_url}/files", params={"fields": "id"},
                                  json={"name": self.folder_name, "mimeType": FOLDER_MIME, "parents": ["root"]})
                folder_id = made.json()["id"]
            self.folder_id = folder_id
        if self.on_folder is not None:
            self.on_folder(folder_id)
        return folder_id

    def _files_named(self, digest: str, fields: str = "id") -> list[dict]:
        q = f"name = '{check_digest(digest)}' and '{_quote(self.folder())}' in parents and trashed = false"
        resp = self._call("GET", f"{self.api_url}/files", params={"q": q, "fields": f"files({fields})",
                                                                   "pageSize": 10, "spaces": "drive"})
        return resp.json().get("files") or []

    def _remember(self, digest: str, file_id: str | None) -> None:
        with self._lock:
            if file_id is None:
                self._ids.pop(digest, None)
                return
            self._ids[digest] = file_id
            self._ids.move_to_end(digest)
            while len(self._ids) > _ID_CACHE:
                self._ids.popitem(last=False)

    def _file_id(self, digest: str) -> str | None:
        with self._lock:
            known = self._ids.get(digest)
        if known is not None:
            return known
        files = self._files_named(digest)
        found = files[0]["id"] if files else None
        if found is not None:
            self._remember(digest, found)
        return found

    # -- writes

    def put(self, digest: str, data: bytes) -> None:
        check_digest(digest)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BlobDigestMismatch("the bytes do not hash to the block's SHA-256",
                                     details={"expected": digest, "actual": actual})
        if self.head(digest) == len(data):
            return  # content addressing: the same name holds the same bytes
        self._upload(digest, data)

    def put_stream(self, digest: str, stream: BinaryIO, size: int) -> None:
        check_digest(digest)
        path = _spool(None, digest, stream, size)  # refuses a wrong size or digest before anything is sent
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        finally:
            _unlink_quietly(path)
        self.put(digest, data)

    def _upload(self, digest: str, data: bytes) -> None:
        boundary = "pcloud-" + secrets.token_hex(16)
        while boundary.encode() in data:
            boundary = "pcloud-" + secrets.token_hex(16)
        metadata = json.dumps({"name": digest, "parents": [self.folder()], "mimeType": "application/octet-stream"})
        body = b"".join([f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                         metadata.encode(),
                         f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                         data, f"\r\n--{boundary}--\r\n".encode()])
        resp = self._call("POST", f"{self.upload_url}/files",
                          params={"uploadType": "multipart", "fields": "id,size,md5Checksum"}, data=body,
                          headers={"Content-Type": f"multipart/related; boundary={boundary}"})
        made = resp.json()
        expected = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if made.get("md5Checksum") != expected or int(made.get("size", -1)) != len(data):
            self._call("DELETE", f"{self.api_url}/files/{made['id']}", expect=(200, 204), missing_ok=True)
            raise StoreUnavailable(f"{self.name}: Google Drive stored other bytes than sent for {digest}")
        self._remember(digest, made["id"])

    def delete(self, digest: str) -> None:
        """Every file of that name (two concurrent puts may have made two)."""
        check_digest(digest)
        for item in self._files_named(digest):
            self._call("DELETE", f"{self.api_url}/files/{item['id']}", expect=(200, 204), missing_ok=True)
        self._remember(digest, None)

    # -- reads

    def get(self, digest: str) -> bytes:
        check_digest(digest)
        for _ in (1, 2):
            file_id = self._file_id(digest)
            if file_id is None:
                raise BlobNotFound(f"no block {digest} in {self.name}")
            resp = self._call("GET", f"{self.api_url}/files/{file_id}", params={"alt": "media"}, missing_ok=True)
            if resp is not None:
                return resp.content
            self._remember(digest, None)  # deleted in the drive meanwhile: look the name up again once
        raise BlobNotFound(f"no block {digest} in {self.name}")

    def open_range(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The block fetched whole (at most 4 MiB), then sliced, as the replicated store does."""
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
        found = self.stat(digest)
        return None if found is None else found[0]

    def stat(self, digest: str) -> tuple[int, float] | None:
        files = self._files_named(digest, "id,size,modifiedTime")
        if not files:
            self._remember(digest, None)
            return None
        newest = max(files, key=lambda f: f.get("modifiedTime") or "")
        self._remember(digest, newest["id"])
        return int(newest.get("size") or 0), _epoch(newest.get("modifiedTime"))

    def check(self) -> None:
        self.account()

    def account(self) -> str:
        """The Google account's email (drive.file may read it): what the person sees in their list of clouds."""
        resp = self._call("GET", f"{self.api_url}/about", params={"fields": "user(emailAddress)"})
        try:
            return str(resp.json()["user"]["emailAddress"])
        except (ValueError, KeyError, TypeError):
            raise StoreUnavailable(f"{self.name}: Google Drive's about answer has no user") from None

    # -- what a drive cannot do

    def presign_put(self, digest: str, size: int, expires_in: int = 3600,
                    upload_id: str | None = None) -> PresignedRequest:
        raise PresignUnsupported(f"{self.name} is a replica target: uploads go to a server store")

    def presign_puts(self, blocks: list[tuple[str, int]], expires_in: int = 3600,
                     upload_id: str | None = None) -> list[PresignedRequest]:
        raise PresignUnsupported(f"{self.name} is a replica target: uploads go to a server store")

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest:
        raise PresignUnsupported(f"{self.name} is read through the server")

    def claim(self, upload_id: str, digest: str, size: int) -> bool:
        return False  # nothing is ever staged here

    def discard_staged(self, upload_id: str) -> None:
        return None


def _reason(resp: requests.Response) -> str:
    try:
        error = resp.json().get("error") or {}
        reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)]
        return ", ".join(r for r in reasons if r) or str(error.get("message") or "")[:100]
    except (ValueError, AttributeError):
        return (resp.text or "")[:100]

