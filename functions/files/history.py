"""Listing and restoring a file's previous versions (issue 19); versions.py owns the collection.

A restore is an overwrite like any other: the version's blocks are written as the file's next content through
uploads.apply_content, so the content it replaces becomes a version in turn, the sync feed and the event log
see an ordinary content change, and nothing is ever lost by restoring.
"""

from __future__ import annotations

from datetime import datetime

from functions.files import versions
from functions.files.nodes import check_rev, get_node, run
from functions.files.tree import node_json, now_ms
from functions.files.uploads import apply_content
from runtime.errors import Conflict, NotFound
from runtime.ids import new_id


def _file(db, owner: str, node_id, session=None) -> dict:
    node = get_node(db, owner, node_id, session)
    if node["kind"] != "file":
        raise Conflict("only files have versions", code="not_a_file", details={"id": node_id})
    return node


def list_versions(db, owner: str, node_id, *, keep_count: int, days: int, now: datetime | None = None) -> list[dict]:
    """The current content first, then the kept versions newest first."""
    node = _file(db, owner, node_id)
    kept = versions.visible(db, owner, node["_id"], keep_count=keep_count, days=days, now=now or now_ms())
    return [versions.version_json(node, current=True)] + [versions.version_json(v) for v in kept]


def find_version(db, owner: str, node_id, rev: int, *, keep_count: int, days: int, session=None,
                 now: datetime | None = None) -> tuple[dict, dict]:
    """(node, version) for a kept rev, or 404 `version_not_found`."""
    node = _file(db, owner, node_id, session)
    for version in versions.visible(db, owner, node["_id"], keep_count=keep_count, days=days, now=now or now_ms(),
                                    session=session):
        if version["rev"] == rev:
            return node, version
    raise NotFound("no such version of this file (it may have been pruned)", code="version_not_found",
                   details={"id": node_id, "rev": rev})


def restore_version(db, mongo, owner: str, node_id, rev: int, *, keep_count: int, days: int, base_rev=None,
                    device_id: str | None = None) -> dict:
    """Make version `rev` the file's content again, as a new revision; returns the node."""
    now = now_ms()

    def fn(s):
        node, version = find_version(db, owner, node_id, rev, keep_count=keep_count, days=days, session=s, now=now)
        check_rev(node, base_rev)
        if node.get("trashed_at") is not None:
            raise Conflict("the file is in the trash; restore it first", code="trashed",
                           details={"node": node_json(node)})
        if node.get("content_hash") == version["content_hash"]:
            return node
        upload = {"_id": f"version-{new_id()}", "blocks": version["blocks"], "size": version["size"],
                  "mtime": version.get("mtime"), "base_rev": None}
        return apply_content(db, owner, upload, node_id=node["_id"], check_base=False, session=s,
                             device_id=device_id, now=now, record_owners=False)[0]

    return run(mongo, None, fn)
