"""HTTP for presigned block URLs: PUT stores, GET streams (Range → 206), both behind an HMAC-signed query."""

from __future__ import annotations

from flask import Response, current_app, request

from functions.blobs import service
from runtime.app import clients
from runtime.errors import RangeNotSatisfiable
from runtime.schemas import Api
from runtime.store import BlobStore, content_disposition

api = Api("blobs", import_name=__name__)
bp = api.blueprint
_DIGEST = {"name": "digest", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
_SIGNED = [{"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
           {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}}]
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def _store() -> BlobStore:
    return current_app.extensions.get("blobs_store") or clients().store


@api.put("/blobs/v1/<digest>", operation_id="putBlock",
         summary="Upload one block through a presigned URL (local store)", security=[],
         parameters=[_DIGEST, {"name": "size", "in": "query", "required": True, "schema": {"type": "integer"}},
                     *_SIGNED],
         body={"required": True, "content": _BYTES},
         responses={200: "stored", 400: "size_mismatch, digest_mismatch or invalid_hash",
                    401: "invalid_signature or url_expired"})
def put_block(digest: str):
    query = request.args.to_dict()
    service.receive(_store(), digest, query, request.content_length, request.stream)
    return Response(b"", status=200, headers={"ETag": f'"{digest}"'})


@api.get("/blobs/v1/<digest>", operation_id="getBlock",
         summary="Download one block through a presigned URL (local store); Range → 206", security=[],
         parameters=[_DIGEST, {"name": "filename", "in": "query", "schema": {"type": "string"}}, *_SIGNED,
                     {"name": "Range", "in": "header", "schema": {"type": "string"}}],
         responses={200: {"description": "the bytes", "content": _BYTES},
                    206: {"description": "a byte range", "content": _BYTES}, 304: "If-None-Match matched",
                    401: "invalid_signature or url_expired", 404: "blob_not_found", 416: "range_not_satisfiable"})
def get_block(digest: str):
    store = _store()
    size, filename = service.locate(store, digest, request.args.to_dict())
    headers = {"ETag": f'"{digest}"', "Accept-Ranges": "bytes", "Cache-Control": "private",
               "Content-Type": "application/octet-stream"}
    if filename:
        headers["Content-Disposition"] = content_disposition(filename)
    if request.if_none_match.contains(digest):
        return Response(status=304, headers=headers)
    start, end, status = 0, None, 200
    span = _requested_span(digest, size)
    if span is not None:
        start, end, status = span[0], span[1] - 1, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(size if end is None else end - start + 1)
    body = store.open_range(digest, start, end) if request.method != "HEAD" else iter(())
    return Response(body, status=status, headers=headers, direct_passthrough=True)


def _requested_span(digest: str, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single satisfiable byte range; None to send everything (no, multi or stale range)."""
    ranges = request.range
    if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
        return None
    if "If-Range" in request.headers and request.if_range.etag != digest:
        return None
    span = ranges.range_for_length(size)
    if span is None:
        raise RangeNotSatisfiable(f"the block has {size} bytes", details={"size": size},
                                  headers={"Content-Range": f"bytes */{size}"})
    return span
