"""Reading a file's content: the node (a file, the caller's or shared with them) and its bytes, block by block.

One reader for every route that serves content: download, versions, share links, previews, an app's file read.
"""

from __future__ import annotations

from functions.files.nodes import get_node
from runtime.errors import Conflict
from runtime.store import BLOCK_SIZE


def content_node(db, owner: str, node_id) -> dict:
    node = get_node(db, owner, node_id)
    if node["kind"] != "file":
        raise Conflict("a folder has no content", code="not_a_file", details={"id": node_id})
    return node


def iter_content(store, node: dict, start: int, end: int):
    """Bytes [start, end] of a file, block after block, each read from the store only as far as needed."""
    hashes = node.get("blocks") or []
    index = start // BLOCK_SIZE
    while index < len(hashes) and index * BLOCK_SIZE <= end:
        base = index * BLOCK_SIZE
        lo = max(start - base, 0)
        hi = min(end - base, BLOCK_SIZE - 1)
        chunks = store.open_range(hashes[index], lo, hi)
        try:
            yield from chunks
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        index += 1
