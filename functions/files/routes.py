"""HTTP for /files/v1 (CONTRACT §3): parse, call the service, shape JSON. The owner is the gateway's identity."""

from __future__ import annotations

import itertools

from flask import Response, jsonify, request

from functions.files import batch, metadata, paths, previews, reading, service, shares, uploads
from functions.files.schemas import (
    BatchResults,
    CommitBatch,
    CommitResults,
    NewFolder,
    NewUpload,
    Node,
    NodeChange,
    NodePage,
    PageQuery,
    PathQuery,
    PreviewQuery,
    TrashQuery,
    UploadBatch,
    UploadStarted,
    UploadUrls,
    UrlsQuery,
)
from runtime.app import clients, page_params
from runtime.errors import BadRequest, NotFound, RangeNotSatisfiable
from runtime.identity import current_identity
from runtime.schemas import Api, body, query

api = Api("files", import_name=__name__)
bp = api.blueprint
DEVICE_HEADER = {"name": "X-PCloud-Device-Id", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the calling device (its own changes are not pushed back to it)"}
_NODE_404 = "no such node, or not yours"


def _owner() -> str:
    return current_identity().user_id


def _acting(node_id, *, write: bool = False, moving: bool = False) -> str:
    """Whose tree this request runs in: the caller's, or a sharer's for a node in a folder shared with the
    caller (functions/files/shares.py decides; a read-only share refuses writes with 403)."""
    return shares.acting_owner(clients().db, _owner(), node_id, write=write, moving=moving)


def _c():
    c = clients()
    return c.db, c.mongo


def _page(docs, cursor):
    return jsonify({"items": [service.node_json(d) for d in docs], "next_cursor": cursor})


def _device_id() -> str | None:
    value = request.headers.get("X-PCloud-Device-Id") or None
    return value[:64] if value else None


@api.get("/files/v1/root", operation_id="getRoot", summary="The caller's root folder (created on first use)",
         responses={200: Node})
def root():
    db, _ = _c()
    return jsonify(service.node_json(service.get_root(db, _owner())))


@api.get("/files/v1/path", operation_id="getNodeAtPath", summary="The live node at a path such as /Camera/x.jpg",
         query=PathQuery, responses={200: Node, 400: "invalid_path", 404: "nothing live at that path of yours"})
def node_at_path():
    db, _ = _c()
    return jsonify(service.node_json(paths.resolve(db, _owner(), request.args.get("path"))))


@api.get("/files/v1/nodes/<node_id>", operation_id="getNode", summary="One node",
         responses={200: Node, 404: _NODE_404})
def get_node(node_id: str):
    db, _ = _c()
    doc = service.get_node(db, _acting(node_id), node_id)
    return jsonify(shares.mount_view(db, _owner(), service.node_json(doc), doc))


@api.get("/files/v1/nodes/<node_id>/children", operation_id="listChildren",
         summary="Live children of a folder by name, paged", query=PageQuery,
         responses={200: NodePage, 400: "invalid_cursor or invalid_limit", 404: _NODE_404})
def children(node_id: str):
    db, _ = _c()
    cursor, limit = page_params(default_limit=100, max_limit=1000)
    return _page(*service.list_children(db, _acting(node_id), node_id, cursor, limit))


@api.post("/files/v1/folders", operation_id="createFolder", summary="Create a folder", body=NewFolder,
          parameters=[DEVICE_HEADER],
          responses={201: Node, 400: "invalid_name", 404: "no such parent folder", 409: "name_taken"})
def create_folder():
    db, mongo = _c()
    new = body(NewFolder)
    doc = service.create_folder(db, mongo, _acting(new.parent_id, write=True), new.parent_id, new.name,
                                device_id=_device_id())
    return jsonify(service.node_json(doc)), 201


@api.patch("/files/v1/nodes/<node_id>", operation_id="updateNode",
           summary="Rename and/or move a node at base_rev, and/or replace its metadata (a JSON object ≤ 4 KiB)",
           body=NodeChange, parameters=[DEVICE_HEADER],
           responses={200: Node, 400: "invalid_name, invalid_base_rev, invalid_metadata, metadata_too_large, "
                                      "invalid_request (unknown field)",
                      404: _NODE_404, 409: "stale_rev (details.node), name_taken, cycle, trashed"})
def patch_node(node_id: str):
    db, mongo = _c()
    change = body(NodeChange)
    sets_metadata = "metadata" in change.model_fields_set
    moves = change.name is not None or change.parent_id is not None or not sets_metadata
    if change.base_rev is None and moves:
        raise BadRequest("base_rev is required to rename or move", code="invalid_base_rev",
                         details={"field": "base_rev"})
    owner = _acting(node_id, write=True, moving=change.name is not None or change.parent_id is not None)
    device = _device_id()
    if change.parent_id is not None and owner != _owner() and _acting(change.parent_id, write=True) != owner:
        raise NotFound("no such folder", code="not_found", details={"id": change.parent_id})

    def apply(s):
        doc = None
        if moves:
            doc = service.update(db, mongo, owner, node_id, name=change.name, parent_id=change.parent_id,
                                 base_rev=change.base_rev, session=s, device_id=device)
        if sets_metadata:
            doc = metadata.set_metadata(db, mongo, owner, node_id, change.metadata, session=s, device_id=device,
                                        base_rev=None if moves else change.base_rev)
        return doc

    return jsonify(service.node_json(service.run(mongo, None, apply)))


@api.delete("/files/v1/nodes/<node_id>", operation_id="trashNode",
            summary="Move a node (and its subtree) to the trash", query=TrashQuery, parameters=[DEVICE_HEADER],
            responses={200: Node, 400: "invalid_base_rev, root_immutable", 404: _NODE_404, 409: "stale_rev"})
def delete_node(node_id: str):
    db, mongo = _c()
    raw = request.args.get("base_rev")
    base_rev = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise BadRequest("base_rev must be a whole number", code="invalid_base_rev")
        base_rev = int(raw)
    doc = service.trash(db, mongo, _acting(node_id, write=True, moving=True), node_id, base_rev=base_rev,
                        device_id=_device_id())
    return jsonify(service.node_json(doc))


@api.post("/files/v1/nodes/<node_id>/restore", operation_id="restoreNode",
          summary="Restore a trashed node with what was trashed with it and its trashed ancestors",
          parameters=[DEVICE_HEADER], responses={200: Node, 404: _NODE_404, 409: "name_taken"})
def restore(node_id: str):
    db, mongo = _c()
    owner = _acting(node_id, write=True)
    return jsonify(service.node_json(service.restore(db, mongo, owner, node_id, device_id=_device_id())))


@api.get("/files/v1/trash", operation_id="listTrash", summary="Nodes the caller trashed, paged", query=PageQuery,
         responses={200: NodePage, 400: "invalid_cursor or invalid_limit"})
def trash():
    db, _ = _c()
    cursor, limit = page_params(default_limit=100, max_limit=1000)
    return _page(*service.list_trash(db, _owner(), cursor, limit))


_NEGOTIATE_400 = ("invalid_hash, invalid_block_size, invalid_size, size_mismatch, invalid_name, invalid_mtime, "
                  "invalid_base_rev, invalid_blocks, invalid_commit, invalid_url_window")


@api.post("/files/v1/uploads", operation_id="startUpload",
          summary="Negotiate an upload: which 4 MiB blocks must be sent, with presigned PUTs", body=NewUpload,
          description="With commit=if_complete, an upload with no block missing is committed in the same request "
                      "(201 new file, 200 overwrite; committed=true and the node). With url_window, only the "
                      "first N PUTs are signed; GET /files/v1/uploads/{upload_id}/urls?after=next_after signs "
                      "the next ones.",
          parameters=[DEVICE_HEADER],
          responses={201: UploadStarted, 200: ("an overwrite committed at once (commit=if_complete)", UploadStarted),
                     400: _NEGOTIATE_400, 404: "no such folder or node", 409: "not_a_file", 413: "too_many_blocks"})
def negotiate():
    c = clients()
    new = body(NewUpload).model_dump()
    answer, status = batch.start_upload(c.db, c.mongo, c.store, _acting(new.get("node_id") or new.get("parent_id"),
                                                                        write=True), new,
                                        max_blocks=c.settings.max_blocks_per_file, device_id=_device_id(),
                                        prover=_owner())
    return jsonify(answer), status


@api.post("/files/v1/uploads/batch", operation_id="startUploads",
          summary="Negotiate many uploads at once, each as POST /files/v1/uploads would (commit=if_complete too)",
          description="Each item is answered on its own, in order, with the status its own request would have "
                      "had; a bad or refused item does not stop the others. At most 500 uploads and "
                      "PCLOUD_MAX_BLOCKS_PER_FILE blocks in all.",
          body=UploadBatch, extra_models=(NewUpload,), parameters=[DEVICE_HEADER],
          responses={200: BatchResults, 400: "invalid_uploads", 413: "too_many_uploads, too_many_blocks"})
def negotiate_batch():
    c = clients()
    results = batch.start_uploads(c.db, c.mongo, c.store, _owner(), body(UploadBatch).uploads,
                                  max_blocks=c.settings.max_blocks_per_file, device_id=_device_id())
    return jsonify({"results": results})


@api.post("/files/v1/uploads/commit", operation_id="commitUploads",
          summary="Commit many uploads at once, each as POST /files/v1/uploads/{upload_id}/commit would",
          description="Each is answered on its own, in order (201 new file, 200 overwrite, or its error: "
                      "blocks_missing, stale_rev, name_taken, upload_expired, not_found). At most 500.",
          body=CommitBatch, parameters=[DEVICE_HEADER],
          responses={200: CommitResults, 400: "invalid_upload_ids", 413: "too_many_uploads"})
def commit_batch():
    c = clients()
    results = batch.commit_uploads(c.db, c.mongo, c.store, _owner(), body(CommitBatch).upload_ids,
                                   device_id=_device_id())
    return jsonify({"results": results})


@api.get("/files/v1/uploads/<upload_id>/urls", operation_id="getUploadUrls",
         summary="The next window of presigned PUTs of a pending upload (after a block hash)", query=UrlsQuery,
         responses={200: UploadUrls, 400: "invalid_cursor (after is not a missing block of it), invalid_limit",
                    404: "no such upload", 409: "upload_committed", 410: "upload_expired"})
def upload_urls(upload_id: str):
    c = clients()
    q = query(UrlsQuery)
    return jsonify(uploads.upload_urls(c.db, c.store, shares.upload_owner(c.db, _owner(), upload_id), upload_id,
                                       after=q.after, limit=q.limit))


@api.post("/files/v1/uploads/<upload_id>/commit", operation_id="commitUpload",
          summary="Commit an upload: 201 new file, 200 overwrite; idempotent", parameters=[DEVICE_HEADER],
          responses={201: ("the new file", Node), 200: ("the overwritten file", Node), 404: "no such upload",
                     409: "blocks_missing (details.missing), stale_rev, name_taken",
                     410: "upload_expired"})
def commit(upload_id: str):
    c = clients()
    doc, created = uploads.commit_upload(c.db, c.mongo, c.store, shares.upload_owner(c.db, _owner(), upload_id),
                                         upload_id, device_id=_device_id())
    return jsonify(service.node_json(doc)), (201 if created else 200)


@api.get("/files/v1/nodes/<node_id>/content", operation_id="getContent",
         summary="The file's bytes; Range → 206, ETag = content_hash",
         parameters=[{"name": "Range", "in": "header", "schema": {"type": "string"}},
                     {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
         responses={200: {"description": "the bytes", "content": {"application/octet-stream": {
                             "schema": {"type": "string", "format": "binary"}}}},
                    206: {"description": "a byte range", "content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    304: "If-None-Match matched", 404: _NODE_404, 409: "not a file",
                    416: "range_not_satisfiable"})
def content(node_id: str):
    c = clients()
    node = reading.content_node(c.db, _acting(node_id), node_id)
    size, etag = int(node.get("size") or 0), node["content_hash"]
    headers = {"ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Cache-Control": "private",
               "Content-Type": "application/octet-stream"}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    start, end, status = 0, size - 1, 200
    ranges = request.range
    use_range = ranges is not None and ranges.units == "bytes" and len(ranges.ranges) == 1
    if use_range and "If-Range" in request.headers and request.if_range.etag != etag:
        use_range = False
    if use_range:
        span = ranges.range_for_length(size)
        if span is None:
            raise RangeNotSatisfiable(f"the file has {size} bytes", details={"size": size},
                                      headers={"Content-Range": f"bytes */{size}"})
        start, end, status = span[0], span[1] - 1, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    stream = reading.iter_content(c.store, node, start, end) if size else iter(())
    first = next(stream, b"")  # the first block is read (and hash-checked) before the status goes out: a 502
    return Response(itertools.chain((first,), stream), status=status, headers=headers, direct_passthrough=True)


@api.get("/files/v1/nodes/<node_id>/preview", operation_id="getPreview",
         summary="A JPEG preview of an image file (JPEG, PNG, WebP, HEIC), EXIF orientation applied, cached",
         query=PreviewQuery,
         responses={200: {"description": "the preview", "content": {"image/jpeg": {
                             "schema": {"type": "string", "format": "binary"}}}},
                    304: "If-None-Match matched", 400: "invalid_size", 404: _NODE_404,
                    413: "image_too_large", 415: "not_an_image (also corrupt or truncated)"})
def preview(node_id: str):
    c = clients()
    size = previews.parse_size(request.args.get("size"))
    jpeg, digest = previews.preview(c.db, c.store, _acting(node_id), node_id, size)
    headers = {"ETag": f'"{digest}"', "Cache-Control": "private, max-age=86400"}
    if request.if_none_match.contains(digest):
        return Response(status=304, headers=headers)
    return Response(jpeg, status=200, mimetype="image/jpeg", headers=headers)
