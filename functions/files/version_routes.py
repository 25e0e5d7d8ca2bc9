"""HTTP for a file's previous versions (issue 19): list, download one, restore one."""

from __future__ import annotations

from flask import Response, jsonify

from functions.files import history, reading, service
from functions.files.schemas import Node
from functions.files.sharing_schemas import VersionPage, VersionRestore
from runtime.app import clients
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("files_versions", tag="files", import_name=__name__)
_404 = "no such node, or not yours; version_not_found"


def _limits(settings) -> dict:
    return {"keep_count": settings.versions_keep, "days": settings.versions_days}


@api.get("/files/v1/nodes/<node_id>/versions", operation_id="listVersions",
         summary="A file's current content and its kept previous versions, newest first",
         responses={200: VersionPage, 404: _404, 409: "not_a_file"})
def list_versions(node_id: str):
    c = clients()
    items = history.list_versions(c.db, current_identity().user_id, node_id, **_limits(c.settings))
    return jsonify({"items": items, "next_cursor": None})


@api.get("/files/v1/nodes/<node_id>/versions/<int:rev>/content", operation_id="getVersionContent",
         summary="The bytes of a kept version",
         responses={200: {"description": "the bytes", "content": {"application/octet-stream": {
             "schema": {"type": "string", "format": "binary"}}}}, 404: _404, 409: "not_a_file"})
def version_content(node_id: str, rev: int):
    c = clients()
    _, version = history.find_version(c.db, current_identity().user_id, node_id, rev, **_limits(c.settings))
    size = int(version.get("size") or 0)
    stream = reading.iter_content(c.store, version, 0, size - 1) if size else iter(())
    return Response(stream, status=200, direct_passthrough=True,
                    headers={"ETag": f'"{version["content_hash"]}"', "Content-Length": str(size),
                             "Content-Type": "application/octet-stream", "Cache-Control": "private"})


@api.post("/files/v1/nodes/<node_id>/versions/<int:rev>/restore", operation_id="restoreVersion",
          summary="Make a kept version the file's content again (a new revision; the replaced content is kept)",
          body=VersionRestore, body_required=False,
          responses={200: Node, 404: _404, 409: "stale_rev, trashed, not_a_file"})
def restore_version(node_id: str, rev: int):
    c = clients()
    change = body(VersionRestore)
    doc = history.restore_version(c.db, c.mongo, current_identity().user_id, node_id, rev,
                                  base_rev=change.base_rev if change else None, **_limits(c.settings))
    return jsonify(service.node_json(doc))
