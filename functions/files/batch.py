"""Fewer requests per file (issue 18): negotiate-and-commit in one request, and many files in one batch.

An unchanged re-backup sends no bytes, yet cost two requests per file (negotiate, commit). With
`"commit": "if_complete"` a negotiation that finds nothing missing commits in the same request, and
`POST /files/v1/uploads/batch` does that for up to MAX_BATCH_UPLOADS files at once, each file on its own: a
bad or refused one answers its own error and the others go on. The commit skips a second block check: the
negotiation has just proven every block (owned by this user, or the whole content held), and the commit
transaction re-reads the block documents anyway, so a block GC started deleting meanwhile is still refused.

Each item runs in the tree it names (issue 19): the caller's, or a sharer's for a folder shared with the caller
read-write (functions/files/shares.py) — as the owner's upload, stored once with the owner's blocks, but the
caller proves possession (they send every block they never sent themselves, so the owner's other files leak
nothing through dedup); an item in a read share answers 403 `read_only_share` in its place.
"""

from __future__ import annotations

from datetime import datetime

from functions.files import shares, uploads
from functions.files.nodes import run
from functions.files.schemas import MAX_BATCH_UPLOADS, NewUpload
from functions.files.tree import node_json, now_ms
from runtime.errors import ApiError, Conflict, PayloadTooLarge
from runtime.schemas import BodyInvalid, validate


def commit_complete(db, mongo, owner: str, upload: dict, *, device_id: str | None = None,
                    now: datetime | None = None) -> tuple[dict, bool]:
    """Commit an upload whose negotiation (this request) found no block missing: (node, created)."""
    now = now or now_ms()

    def fn(session):
        return uploads.apply_content(db, owner, upload, parent_id=upload["parent_id"], name=upload["name"],
                                     node_id=upload.get("node_id"), check_base=True, session=session,
                                     device_id=device_id, now=now, record_owners=False)

    return run(mongo, None, fn)


def start_upload(db, mongo, store, owner: str, body: dict, *, max_blocks: int, device_id: str | None = None,
                 now: datetime | None = None, prover: str | None = None) -> tuple[dict, int]:
    """POST /files/v1/uploads: negotiate, and with commit=if_complete commit when nothing is missing.
    Returns (the answer's JSON, its status): 201, or 200 when an overwrite was committed. `prover` is the caller
    when `owner` is a sharer's (uploads.negotiate_upload: the caller proves the blocks, not the owner)."""
    upload = uploads.negotiate_upload(db, store, owner, body, max_blocks=max_blocks, now=now,
                                      url_window=body.get("url_window"), prover=prover)
    answer = uploads.upload_json(upload)
    answer["committed"] = False
    if body.get("commit") != "if_complete" or upload["missing_count"]:
        return answer, 201
    try:
        node, created = commit_complete(db, mongo, owner, upload, device_id=device_id, now=now)
    except Conflict as refused:  # name_taken, stale_rev, blocks_missing (GC): the upload stays pending
        answer["commit_error"] = refused.body()["error"]
        return answer, 201
    answer.update(committed=True, created=created, node=node_json(node))
    return answer, 201 if created else 200


def commit_uploads(db, mongo, store, caller: str, upload_ids, *, device_id: str | None = None) -> list[dict]:
    """POST /files/v1/uploads/commit: commit each upload as POST …/{id}/commit would, in order; each answers
    `{"status", "node"}` or `{"status", "error"}` in its place (a first backup: negotiate a batch, PUT, commit it)."""
    check_batch(upload_ids, "upload_ids")
    results = []
    for upload_id in upload_ids:
        try:
            owner = shares.upload_owner(db, caller, upload_id)
            node, created = uploads.commit_upload(db, mongo, store, owner, upload_id, device_id=device_id)
        except ApiError as err:
            results.append({"upload_id": upload_id if isinstance(upload_id, str) else None, "status": err.status,
                            "error": err.body()["error"]})
            continue
        results.append({"upload_id": upload_id, "status": 201 if created else 200, "node": node_json(node)})
    return results


def check_batch(items, name: str = "uploads") -> list:
    if not isinstance(items, list):
        raise BodyInvalid(f"{name} must be a list", code=f"invalid_{name}")
    if len(items) > MAX_BATCH_UPLOADS:
        raise PayloadTooLarge(f"send at most {MAX_BATCH_UPLOADS} uploads per batch", code="too_many_uploads",
                              details={"max": MAX_BATCH_UPLOADS, name: len(items)})
    return items


def start_uploads(db, mongo, store, caller: str, items: list, *, max_blocks: int, device_id: str | None = None
                  ) -> list[dict]:
    """POST /files/v1/uploads/batch: each item as start_upload answers it, with its status; an item that fails
    answers its error (and status) in its place. All items together have at most `max_blocks` blocks (413)."""
    check_batch(items)
    total = sum(len(i.get("blocks") or []) for i in items if isinstance(i, dict) and isinstance(i.get("blocks"), list))
    if total > max_blocks:
        raise PayloadTooLarge(f"a batch has at most {max_blocks} blocks in all; send big files on their own",
                              code="too_many_blocks", details={"max_blocks": max_blocks, "blocks": total})
    now = now_ms()
    results = []
    for item in items:
        try:
            body = validate(NewUpload, item, whole="upload").model_dump()
            owner = shares.acting_owner(db, caller, body.get("node_id") or body.get("parent_id"), write=True)
            answer, status = start_upload(db, mongo, store, owner, body, max_blocks=max_blocks,
                                          device_id=device_id, now=now, prover=caller)
        except ApiError as err:
            results.append({"status": err.status, "error": err.body()["error"]})
            continue
        results.append({"status": status, **answer})
    return results
