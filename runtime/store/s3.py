"""`S3BlobStore`: blobs as objects in one bucket of AWS S3, MinIO or moto, through boto3."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from runtime.errors import (
    ApiError,
    RangeNotSatisfiable,
)
from runtime.store import sigv4
from runtime.store.base import (
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
    content_disposition,
)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"}


class S3BlobStore:
    """Blobs as objects `blocks/<digest>` in one bucket; S3 itself checks each PUT's SHA-256."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str = "us-east-1",
                 timeout: float = 10.0, public_endpoint: str | None = None):
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
        self._session = boto3.session.Session()
        self.client = self._session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        # Presigned URLs go to phones and browsers: they must name the store as clients reach it (a public
        # host behind the reverse proxy), not as the server does (a container name). SigV4 signs the host, so
        # the URL is signed for the public endpoint by a client configured with it; no request is sent by it.
        self._presign_session = self._session if not public_endpoint else boto3.session.Session()
        self.presigner = self.client if not public_endpoint else self._presign_session.client(
            "s3", endpoint_url=public_endpoint, region_name=region,
            config=config.merge(Config(s3={"addressing_style": "path"})))

    @staticmethod
    def key(digest: str) -> str:
        return f"blocks/{check_digest(digest)}"

    @staticmethod
    def staged_key(upload_id: str, digest: str) -> str:
        return f"staging/{check_upload_id(upload_id)}/{check_digest(digest)}"

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

    def presign_put(self, digest: str, size: int, expires_in: int = 3600,
                    upload_id: str | None = None) -> PresignedRequest:
        """A PUT URL that signs the SHA-256 and the length, so S3 refuses any other bytes (BadDigest); with
        an upload id it writes that upload's staging key, which `claim` copies into the shared block."""
        if size < 0 or size > BLOCK_SIZE:
            raise ValueError(f"a block is 0..{BLOCK_SIZE} bytes, got {size}")
        _check_expiry(expires_in)
        checksum = self.checksum(digest)
        key = self.staged_key(upload_id, digest) if upload_id is not None else self.key(digest)
        url = self.presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ChecksumSHA256": checksum,
                    "ContentLength": size},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return PresignedRequest(url=url, method="PUT",
                                headers={"Content-Length": str(size), "x-amz-checksum-sha256": checksum})

    def presign_puts(self, blocks: list[tuple[str, int]], expires_in: int = 3600,
                     upload_id: str | None = None) -> list[PresignedRequest]:
        """`presign_put` for many blocks at once: botocore signs the first URL, the rest are signed with its
        SigV4 signing key (runtime/store/sigv4.py), ~20x cheaper each; botocore signs them all when ours differ."""
        if not blocks:
            return []
        first = self.presign_put(blocks[0][0], blocks[0][1], expires_in, upload_id)
        rest = blocks[1:]
        if not rest:
            return [first]
        credentials = self._presign_session.get_credentials()
        secret = credentials.get_frozen_credentials().secret_key if credentials is not None else None
        key = self.staged_key(upload_id, blocks[0][0]) if upload_id is not None else self.key(blocks[0][0])
        template = sigv4.template_for(first.url, key, blocks[0][1], first.headers["x-amz-checksum-sha256"], secret)
        if template is None:
            return [first, *(self.presign_put(d, n, expires_in, upload_id) for d, n in rest)]
        signed = [first]
        for digest, size in rest:
            if size < 0 or size > BLOCK_SIZE:
                raise ValueError(f"a block is 0..{BLOCK_SIZE} bytes, got {size}")
            checksum = self.checksum(digest)
            key = self.staged_key(upload_id, digest) if upload_id is not None else self.key(digest)
            signed.append(PresignedRequest(url=template.url(key, size, checksum), method="PUT",
                                           headers={"Content-Length": str(size), "x-amz-checksum-sha256": checksum}))
        return signed

    def claim(self, upload_id: str, digest: str, size: int) -> bool:
        """Server-side copy of the staged object into `blocks/<digest>` (when that is not there yet), then
        the staged object goes. Its checksum was signed into the PUT; the bytes are hashed once more here."""
        staged = self.staged_key(upload_id, digest)
        try:
            found = self._call(digest, "head_object", Bucket=self.bucket, Key=staged, ChecksumMode="ENABLED")
        except BlobNotFound:
            return False
        checksum = found.get("ChecksumSHA256")
        if found["ContentLength"] != size or (checksum and checksum != self.checksum(digest)) \
                or not self._hashes_to(staged, digest):
            self._call(digest, "delete_object", Bucket=self.bucket, Key=staged)
            return False
        if self.head(digest) != size:
            self._call(digest, "copy_object", Bucket=self.bucket, Key=self.key(digest),
                       CopySource={"Bucket": self.bucket, "Key": staged}, ChecksumAlgorithm="SHA256")
        self._call(digest, "delete_object", Bucket=self.bucket, Key=staged)
        return True

    def _hashes_to(self, key: str, digest: str) -> bool:
        """Read the staged object back once: S3 checks the signed checksum, but not every S3-compatible
        store does, and a wrong block here would become every later uploader's content."""
        hasher = hashlib.sha256()
        body = self._call(digest, "get_object", Bucket=self.bucket, Key=key)["Body"]
        for chunk in self._iterate(digest, body):
            hasher.update(chunk)
        return hasher.hexdigest() == digest

    def discard_staged(self, upload_id: str) -> None:
        prefix = f"staging/{check_upload_id(upload_id)}/"
        listed = self._call(None, "list_objects_v2", Bucket=self.bucket, Prefix=prefix, MaxKeys=1000)
        keys = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
        if keys:
            self._call(None, "delete_objects", Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def presign_get(self, digest: str, expires_in: int = 3600, filename: str | None = None) -> PresignedRequest:
        _check_expiry(expires_in)
        params = {"Bucket": self.bucket, "Key": self.key(digest)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        url = self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in, HttpMethod="GET")
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


