"""Block hashing per CONTRACT §3: 4 MiB blocks, hex SHA-256 each, content_hash over the raw block digests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

BLOCK_SIZE = 4 * 1024 * 1024


def iter_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(BLOCK_SIZE)
            if not chunk:
                return
            yield chunk


def hash_file(path: Path) -> tuple[list[dict], str, int]:
    """(blocks [{hash, size}], content_hash, size), reading the file once, one block in memory at a time."""
    blocks, whole, size = [], hashlib.sha256(), 0
    for chunk in iter_blocks(path):
        digest = hashlib.sha256(chunk).digest()
        whole.update(digest)
        blocks.append({"hash": digest.hex(), "size": len(chunk)})
        size += len(chunk)
    return blocks, whole.hexdigest(), size


def read_block(path: Path, index: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(index * BLOCK_SIZE)
        return handle.read(BLOCK_SIZE)
