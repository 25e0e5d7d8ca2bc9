"""Per-node user metadata (issue 19): a small JSON object on any file or folder.

Stored as its compact JSON text (`nodes.metadata`), so any key a user chooses — `$x`, `a.b`, "" — is safe in
MongoDB and the 4 KiB limit is measured on exactly what is kept. Setting it is a revision of the node like a
rename (rev and seq move on, `files.node.updated` goes to the event log), which is how the search indexer and
the sync feed learn about it.
"""

from __future__ import annotations

import json

from functions.files import eventlog
from functions.files.nodes import check_rev, get_node, run, write_node
from runtime.errors import BadRequest

MAX_BYTES = 4096


def encode(value) -> str | None:
    """The stored text of `value` (a JSON object, or None to clear); 400 for anything else or above 4 KiB."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("metadata is a JSON object (or null to remove it)", code="invalid_metadata")
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise BadRequest(f"metadata is at most {MAX_BYTES} bytes of JSON (this is {size})",
                         code="metadata_too_large", details={"max_bytes": MAX_BYTES, "bytes": size})
    return text or None


def set_metadata(db, mongo, owner: str, node_id, value, *, base_rev=None, session=None,
                 device_id: str | None = None) -> dict:
    """Replace the node's metadata (None removes it); no change, no new revision."""
    text = encode(value)

    def fn(s):
        node = get_node(db, owner, node_id, s)
        check_rev(node, base_rev)
        if (node.get("metadata") or None) == text:
            return node
        written = write_node(db, owner, node, {"metadata": text}, session=s, device_id=device_id)
        if written.get("trashed_at") is None:
            eventlog.record(db, owner, "updated", [written], s)
        return written

    return run(mongo, session, fn)

