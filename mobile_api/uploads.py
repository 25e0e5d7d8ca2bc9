"""Upload commits for the ops referee, over the files service (functions/files/service.py).

The referee decides where the uploaded content goes (over the node, as a new file, or under a conflicted-copy
name); this adapter asks the files service to write it inside the op's transaction.
"""

from __future__ import annotations

import hashlib


def content_hash(block_hashes: list[str]) -> str:
    """CONTRACT §3: SHA-256 of the concatenated raw block digests (empty file: SHA-256 of nothing)."""
    digest = hashlib.sha256()
    for block in block_hashes:
        digest.update(bytes.fromhex(block))
    return digest.hexdigest()


def block_hashes(upload: dict) -> list[str]:
    return [b["hash"] if isinstance(b, dict) else b for b in upload.get("blocks") or []]


def committer(clients):
    """A `Committer` for mobile_api.ops, or None while the files service is not deployed here."""
    try:
        from functions.files import service as files_service
    except ImportError:
        return None
    return _FilesCommitter(clients, files_service)


class _FilesCommitter:
    def __init__(self, clients, files_service):
        self.clients = clients
        self.files = files_service

    def __call__(self, db, owner: str, upload: dict, *, parent_id, name, node_id, session, device_id) -> dict:
        raise NotImplementedError("wired when functions/files/service.py lands")
