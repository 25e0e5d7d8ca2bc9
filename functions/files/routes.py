"""HTTP for /files/v1 (CONTRACT §3): parse, call the service, shape JSON. The owner is the gateway's identity."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from functions.files import previews, service, uploads
from runtime.app import clients, json_body, page_params
from runtime.errors import BadRequest, RangeNotSatisfiable
from runtime.identity import current_identity

bp = Blueprint("files", __name__)


def _owner() -> str:
    return current_identity().user_id


def _c():
    c = clients()
    return c.db, c.mongo


def _page(docs, cursor):
    return jsonify({"items": [service.node_json(d) for d in docs], "next_cursor": cursor})


def _device_id() -> str | None:
    value = request.headers.get("X-PCloud-Device-Id") or None
    return value[:64] if value else None


@bp.get("/files/v1/root")
def root():
    db, _ = _c()
    return jsonify(service.node_json(service.get_root(db, _owner())))


@bp.get("/files/v1/nodes/<node_id>")
def get_node(node_id: str):
    db, _ = _c()
    return jsonify(service.node_json(service.get_node(db, _owner(), node_id)))


@bp.get("/files/v1/nodes/<node_id>/children")
def children(node_id: str):
    db, _ = _c()
    cursor, limit = page_params(default_limit=100, max_limit=1000)
    return _page(*service.list_children(db, _owner(), node_id, cursor, limit))


@bp.post("/files/v1/folders")
def create_folder():
    db, mongo = _c()
    body = json_body()
    doc = service.create_folder(db, mongo, _owner(), body.get("parent_id"), body.get("name"), device_id=_device_id())
    return jsonify(service.node_json(doc)), 201


@bp.patch("/files/v1/nodes/<node_id>")
def patch_node(node_id: str):
    db, mongo = _c()
    body = json_body()
    unknown = set(body) - {"name", "parent_id", "base_rev"}
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}", code="invalid_request")
    if "base_rev" not in body or body["base_rev"] is None:
        raise BadRequest("base_rev is required", code="invalid_base_rev")
    if "parent_id" in body and not isinstance(body["parent_id"], str):
        raise BadRequest("parent_id must be a node id", code="invalid_request")
    doc = service.update(db, mongo, _owner(), node_id, name=body.get("name"), parent_id=body.get("parent_id"),
                         base_rev=body["base_rev"], device_id=_device_id())
    return jsonify(service.node_json(doc))


@bp.delete("/files/v1/nodes/<node_id>")
def delete_node(node_id: str):
    db, mongo = _c()
    raw = request.args.get("base_rev")
    base_rev = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise BadRequest("base_rev must be a whole number", code="invalid_base_rev")
        base_rev = int(raw)
    doc = service.trash(db, mongo, _owner(), node_id, base_rev=base_rev, device_id=_device_id())
    return jsonify(service.node_json(doc))


@bp.post("/files/v1/nodes/<node_id>/restore")
def restore(node_id: str):
    db, mongo = _c()
    return jsonify(service.node_json(service.restore(db, mongo, _owner(), node_id, device_id=_device_id())))


@bp.get("/files/v1/trash")
def trash():
    db, _ = _c()
    cursor, limit = page_params(default_limit=100, max_limit=1000)
    return _page(*service.list_trash(db, _owner(), cursor, limit))


@bp.post("/files/v1/uploads")
def negotiate():
    c = clients()
    upload = uploads.negotiate_upload(c.db, c.store, _owner(), json_body(),
                                      max_blocks=c.settings.max_blocks_per_file)
    return jsonify(uploads.upload_json(upload)), 201


@bp.post("/files/v1/uploads/<upload_id>/commit")
def commit(upload_id: str):
    c = clients()
    doc, created = uploads.commit_upload(c.db, c.mongo, c.store, _owner(), upload_id, device_id=_device_id())
    return jsonify(service.node_json(doc)), (201 if created else 200)


@bp.get("/files/v1/nodes/<node_id>/content")
def content(node_id: str):
    c = clients()
    node = uploads.content_node(c.db, _owner(), node_id)
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
    body = uploads.iter_content(c.store, node, start, end) if size else iter(())
    return Response(body, status=status, headers=headers, direct_passthrough=True)


@bp.get("/files/v1/nodes/<node_id>/preview")
def preview(node_id: str):
    c = clients()
    size = previews.parse_size(request.args.get("size"))
    jpeg, digest = previews.preview(c.db, c.store, _owner(), node_id, size)
    headers = {"ETag": f'"{digest}"', "Cache-Control": "private, max-age=86400"}
    if request.if_none_match.contains(digest):
        return Response(status=304, headers=headers)
    return Response(jpeg, status=200, mimetype="image/jpeg", headers=headers)
