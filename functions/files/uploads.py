"""Dedup uploads (CONTRACT §3): negotiate → presigned PUT per missing block → commit.

Proof of possession: a block is "already stored" for a user only when `block_owners` has `<user>:<hash>`
(they uploaded it, or committed a file that references it); everyone else must send the bytes, though the
store keeps one object per hash. Each presigned PUT is bound to the negotiating upload (its id is in the
signed local URL; on S3 the PUT writes a per-upload staging key): at commit the store `claim`s what this
upload itself sent into the shared block. Bytes someone else sent — even the same hash, even after this
negotiation — never prove anything for this upload. Negotiation costs a constant number of database round
trips whatever the block count. Commit claims every block the user has not proven before, then in one
transaction writes the node, the block reference counts, the owners, the journal seq and the outbox events.

Where and when (issue 19): the PUTs of a negotiation are signed for the store its folder's policy acknowledges a
block on (the first of the policy's `stores` that is up, else the next, else the ingest store: runtime/store/
replicas.py `sign_puts`); the upload remembers it (`put_stores`), GET …/urls signs for the same, and commit claims
there first, so a block is durable on the policy's first copy when commit answers. A commit into an at_rest
folder also asks the placement worker to seal it now (replication.request_placement, in the commit's
transaction; the scheduler's doorbell enqueues the job at once).

GC safety (functions/files/gc.py): blocks referenced by a pending upload are never collected, and GC marks a
block `deleting` in a transaction before touching the store; the commit transaction re-reads the same block
documents and writes them, so one of the two loses with a write conflict and a commit can never reference a
block GC is deleting (it answers 409 `blocks_missing` and the client sends the bytes again).
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, UpdateOne

from functions.files import eventlog, policy, replication, tree, versions
from functions.files.nodes import check_free, check_rev, get_node, live_folder, run, write_node
from functions.files.tree import check_name, next_seq, node_json, now_ms, truncate_ms
from runtime import events
from runtime.errors import BadRequest, Conflict, Gone, NotFound, PayloadTooLarge
from runtime.ids import as_utc, new_id
from runtime.mongo import register_indexes
from runtime.store import BLOCK_SIZE

UPLOAD_TTL = timedelta(hours=24)
HEAD_THREADS = 8
IN_SLICE = 500
URL_WINDOW = 256  # default and
URL_WINDOW_MAX = 1000  # largest window of presigned PUTs per GET …/urls
_HASH = re.compile(r"^[0-9a-f]{64}$")
EMPTY_HASH = hashlib.sha256(b"").hexdigest()


@register_indexes
def ensure_indexes(db) -> None:
    db.uploads.create_index([("owner", ASCENDING), ("status", ASCENDING)])
    db.uploads.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
    db.nodes.create_index([("owner", ASCENDING), ("content_hash", ASCENDING)])
    db.blocks.create_index([("refs", ASCENDING), ("zero_since", ASCENDING)])
    db.block_owners.create_index([("hash", ASCENDING)])


def content_hash(block_hashes: list[str]) -> str:
    """SHA-256 of the concatenated raw 32-byte block digests (empty file: SHA-256 of nothing)."""
    digest = hashlib.sha256()
    for block in block_hashes:
        digest.update(bytes.fromhex(block))
    return digest.hexdigest()


def block_sizes(size: int, count: int) -> list[int]:
    """Every block is BLOCK_SIZE but the last; the upload keeps only the hashes and the total size."""
    if count == 0:
        return []
    return [BLOCK_SIZE] * (count - 1) + [size - BLOCK_SIZE * (count - 1)]


def parse_mtime(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest("mtime is an ISO 8601 time or seconds since the epoch", code="invalid_mtime")
    try:
        if isinstance(value, int | float):
            return truncate_ms(datetime.fromtimestamp(value, UTC))
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return truncate_ms(parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    except (ValueError, OverflowError, OSError):
        pass
    raise BadRequest("mtime is an ISO 8601 time or seconds since the epoch", code="invalid_mtime")


def check_blocks(blocks, size, max_blocks: int) -> list[str]:
    """The bad-input rules of issue 4; returns the list of block hashes."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest("size must be a non-negative integer", code="invalid_size")
    if not isinstance(blocks, list):
        raise BadRequest("blocks must be a list of {hash, size}", code="invalid_blocks")
    if len(blocks) > max_blocks:
        raise PayloadTooLarge(f"a file has at most {max_blocks} blocks", code="too_many_blocks",
                              details={"max_blocks": max_blocks, "blocks": len(blocks)})
    hashes, total, seen = [], 0, {}
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise BadRequest("each block is {hash, size}", code="invalid_blocks", details={"index": i})
        digest, block_size = block.get("hash"), block.get("size")
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            raise BadRequest("a block hash is 64 lowercase hex characters (SHA-256)", code="invalid_hash",
                             details={"index": i})
        if isinstance(block_size, bool) or not isinstance(block_size, int):
            raise BadRequest("a block size is an integer", code="invalid_block_size", details={"index": i})
        last = i == len(blocks) - 1
        if (not last and block_size != BLOCK_SIZE) or (last and not 1 <= block_size <= BLOCK_SIZE):
            raise BadRequest(f"every block is exactly {BLOCK_SIZE} bytes except the last (1..{BLOCK_SIZE})",
                             code="invalid_block_size", details={"index": i, "size": block_size})
        if seen.setdefault(digest, block_size) != block_size:
            raise BadRequest("one hash cannot name blocks of two sizes", code="invalid_block_size",
                             details={"index": i, "hash": digest})
        hashes.append(digest)
        total += block_size
    if total != size:
        raise BadRequest("the block sizes do not add up to size", code="size_mismatch",
                         details={"size": size, "blocks_total": total})
    return hashes


def owns_content(db, owner: str, whole: str, session=None) -> bool:
    """A user holding a file (live or trashed, not purged) with this content has proven all of its blocks,
    and that file's references keep them from GC."""
    return db.nodes.find_one({"owner": owner, "content_hash": whole, "kind": "file", "purged": {"$ne": True}},
                             {"_id": 1}, session=session) is not None


def _find_in(collection, ids: list[str], projection=None, session=None):
    """`_id $in ids`, in slices: SecantusDB's time for an `$in` grows with (matches x list length), so a 10,000-id
    list of existing documents takes minutes in one query and seconds in slices (a real mongod does not care)."""
    for start in range(0, len(ids), IN_SLICE):
        yield from collection.find({"_id": {"$in": ids[start:start + IN_SLICE]}}, projection,
                                   session=session).batch_size(IN_SLICE + 1)


def _owned(db, owner: str, hashes: list[str], session=None) -> set[str]:
    ids = [f"{owner}:{h}" for h in hashes]
    return {d["hash"] for d in _find_in(db.block_owners, ids, {"hash": 1}, session)}


def _block_docs(db, hashes: list[str], session=None) -> dict[str, dict]:
    return {d["_id"]: d for d in _find_in(db.blocks, hashes, None, session)}


def negotiate_upload(db, store, owner: str, body: dict, *, max_blocks: int = 10000, now: datetime | None = None,
                     ttl: timedelta = UPLOAD_TTL, session=None, url_window: int | None = None,
                     prover: str | None = None) -> dict:
    """Record an upload and say which blocks this user must send; returns the upload doc plus `missing`
    (presigned PUTs: all of them, or the first `url_window`, then `next_after` for GET …/urls).

    `prover`: who sends the bytes when that is not the tree's owner (a sharee writing into a folder shared with
    them): the blocks they must send are those *they* never proved, so the owner's files leak nothing to them."""
    now = now or now_ms()
    who = prover or owner
    hashes = check_blocks(body.get("blocks"), body.get("size"), max_blocks)
    size = body["size"]
    mtime = parse_mtime(body.get("mtime"))
    node_id, base_rev = body.get("node_id"), body.get("base_rev")
    parent_id, name = body.get("parent_id"), body.get("name")
    if node_id is not None:
        node = get_node(db, owner, node_id, session)
        if node["kind"] != "file":
            raise Conflict("only a file's content can be overwritten", code="not_a_file", details={"id": node_id})
        if base_rev is None:
            raise BadRequest("an overwrite (node_id) needs the base_rev it was made from", code="invalid_base_rev")
        check_rev({"rev": base_rev}, base_rev)  # type check only: negotiation never compares revs
        parent_id, name = node["parent_id"], node["name"]
    else:
        if base_rev is not None:
            raise BadRequest("base_rev goes with node_id (an overwrite)", code="invalid_base_rev")
        name = check_name(name)
        node = live_folder(db, owner, parent_id, session)
    unique = list(dict.fromkeys(hashes))
    sizes = dict(zip(hashes, block_sizes(size, len(hashes)), strict=True))
    whole = content_hash(hashes)
    if owns_content(db, who, whole, session):  # the same file again: one lookup, whatever the block count
        docs, missing = {}, []
    else:
        docs = _block_docs(db, unique, session)
        owned = _owned(db, who, [h for h in unique if h in docs], session) if docs else set()
        missing = [h for h in unique if h not in owned or h not in docs or docs[h].get("state") == "deleting"]
    upload_id = new_id()
    window = missing if url_window is None else missing[:url_window]
    # only bytes that are sent need the policy (where they are acknowledged, and sealing at once for at_rest):
    # a re-upload of content the user has costs no lookup
    placement = policy.for_upload(db, owner, node) if missing else {"stores": None, "encryption": None}
    signed, put_store, fallback = signed_blocks(store, upload_id, window, sizes, max(1, int(ttl.total_seconds())),
                                                placement["stores"])
    upload = {"_id": upload_id, "owner": owner, "parent_id": parent_id, "name": name, "size": size,
              "mtime": mtime, "blocks": hashes, "node_id": node_id, "base_rev": base_rev,
              "expires_at": now + ttl, "status": "pending", "result": None, "created_at": now,
              "content_hash": whole,
              # what GET …/urls signs later: "all" (every distinct block) saves a second 10,000-hash list
              "missing_blocks": "all" if missing and len(missing) == len(unique) else missing,
              # the folder's policy as negotiated: GET …/urls signs for the same stores, commit asks them first
              # and, for an at_rest folder, wakes the placement worker to seal at once
              "policy": {"stores": placement["stores"], "encryption": placement["encryption"]},
              "put_stores": [put_store] if put_store else []}
    if who != owner:
        upload["prover"] = who
    db.uploads.insert_one(upload, session=session)
    if fallback:
        replication.count_ack_fallback(db, placement["stores"][0], put_store)
    upload["missing"], upload["store_fallback"] = signed, fallback
    upload["missing_count"] = len(missing)
    upload["next_after"] = window[-1] if len(window) < len(missing) else None
    return upload


def signed_blocks(store, upload_id: str, hashes: list[str], sizes: dict[str, int], expires_in: int,
                  stores: list[str] | None = None) -> tuple[list[dict], str | None, bool]:
    """(the contract's `missing` items, the store they were signed for, whether that is a fallback): one batch
    for one store's signer. With several stores the PUTs go to the first of the policy's `stores` that is up
    (the block is acknowledged there), else the next, else the ingest store; URLs stay opaque to clients."""
    if not hashes:
        return [], None, False
    blocks = [(h, sizes[h]) for h in hashes]
    if hasattr(store, "sign_puts"):
        name, fallback, signed = store.sign_puts(blocks, expires_in=expires_in, upload_id=upload_id,
                                                 preferred=stores)
    else:  # a single store
        name, fallback, signed = None, False, store.presign_puts(blocks, expires_in=expires_in, upload_id=upload_id)
    return ([{"hash": h, "url": p.url, "method": p.method, "headers": dict(p.headers)}
             for h, p in zip(hashes, signed, strict=True)], name, fallback)


def missing_of(upload: dict) -> list[str]:
    """The blocks negotiation listed as missing (uploads negotiated before the field existed: every block)."""
    listed = upload.get("missing_blocks", "all")
    return list(dict.fromkeys(upload["blocks"])) if listed == "all" else listed


def upload_urls(db, store, owner: str, upload_id, *, after: str | None = None, limit: int = URL_WINDOW,
                now: datetime | None = None) -> dict:
    """The next window of presigned PUTs of a pending upload, after the block hash `after` (the last one the
    client got); freshly signed, valid until the upload expires. 400 invalid_cursor when `after` is not one of
    its missing blocks, 409 upload_committed once committed, 410 upload_expired."""
    now = now or now_ms()
    upload = get_upload(db, owner, upload_id)
    if upload["status"] == "committed":
        raise Conflict("the upload is committed; nothing is left to send", code="upload_committed",
                       details={"upload_id": upload["_id"]})
    _check_open(upload, now)
    missing = missing_of(upload)
    start = 0
    if after is not None:
        try:
            start = missing.index(after) + 1
        except ValueError:
            raise BadRequest("after must be the hash of a missing block of this upload", code="invalid_cursor",
                             details={"after": after[:80]}) from None
    window = missing[start:start + limit]
    sizes = dict(zip(upload["blocks"], block_sizes(upload["size"], len(upload["blocks"])), strict=True))
    expires_in = max(1, int((as_utc(upload["expires_at"]) - now).total_seconds()))
    stores = (upload.get("policy") or {}).get("stores")
    signed, put_store, fallback = signed_blocks(store, upload["_id"], window, sizes, expires_in, stores)
    if put_store and put_store not in upload.get("put_stores", []):  # a store went away (or came back) meanwhile
        db.uploads.update_one({"_id": upload["_id"]}, {"$addToSet": {"put_stores": put_store}})
        if fallback:
            replication.count_ack_fallback(db, stores[0], put_store)
    return {"upload_id": upload["_id"], "expires_at": tree.iso(upload["expires_at"]),
            "missing": signed, "missing_count": len(missing),
            "next_after": window[-1] if start + len(window) < len(missing) else None,
            "store": put_store, "store_fallback": fallback}


def _claims(store, upload: dict, wanted: dict[str, int]) -> list[bool]:
    """Ask the store, in parallel, which blocks this upload's own PUTs delivered (and move them in): first the
    stores its links were signed for, so a block is acknowledged on the store its policy acknowledges on."""
    if not wanted:
        return []
    prefer = upload.get("put_stores")
    if prefer and hasattr(store, "sign_puts"):
        claim = lambda item: store.claim(upload["_id"], item[0], item[1], prefer=prefer)  # noqa: E731
    else:
        claim = lambda item: store.claim(upload["_id"], item[0], item[1])  # noqa: E731
    with ThreadPoolExecutor(max_workers=min(HEAD_THREADS, len(wanted))) as pool:
        return list(pool.map(claim, wanted.items()))


def get_upload(db, owner: str, upload_id, session=None) -> dict:
    if not isinstance(upload_id, str) or not upload_id:
        raise NotFound("no such upload", code="not_found")
    upload = db.uploads.find_one({"_id": upload_id, "owner": owner}, session=session)
    if upload is None:
        raise NotFound("no such upload", code="not_found", details={"upload_id": upload_id})
    return upload


def verify_blocks(db, store, owner: str, upload: dict, now: datetime | None = None) -> list[str]:
    """Blocks of the upload that are not there for this user.

    A block counts when the user proved it before (`block_owners`) or when this upload's own PUT delivered
    it (the store's `claim`; the proof is recorded at once, so a commit that then fails keeps it). Bytes
    anyone else stored under the hash do not count: the hash alone never grants its content. "This user" is the
    upload's `prover` when a sharee negotiated it into the owner's tree."""
    owner = upload.get("prover") or owner
    hashes = upload["blocks"]
    sizes = dict(zip(hashes, block_sizes(upload["size"], len(hashes)), strict=True))
    unique = list(sizes)
    if owns_content(db, owner, upload.get("content_hash") or content_hash(hashes)):
        return []
    docs = _block_docs(db, unique)
    owned = _owned(db, owner, [h for h in unique if h in docs]) if docs else set()
    missing, to_claim = [], {}
    for h in unique:
        doc = docs.get(h)
        if doc is not None and doc.get("state") == "deleting":
            missing.append(h)  # what this upload staged stays staged: a later commit claims it
        elif h in owned and doc is not None:  # proven before; GC drops the proof only after the bytes
            continue
        else:
            to_claim[h] = sizes[h]
    claimed = {}
    for (h, size), ok in zip(to_claim.items(), _claims(store, upload, to_claim), strict=True):
        if ok:
            claimed[h] = size
        else:
            missing.append(h)
    if claimed:
        _record(db, owner, claimed, now or now_ms())
    return missing


def _record(db, owner: str, sizes: dict[str, int], now: datetime) -> None:
    db.blocks.bulk_write([UpdateOne({"_id": h}, {"$setOnInsert": {"size": n, "refs": 0, "zero_since": now,
                                                                    "state": "pending", "created_at": now}},
                                    upsert=True) for h, n in sizes.items()], ordered=False)
    db.block_owners.bulk_write([UpdateOne({"_id": f"{owner}:{h}"}, {"$setOnInsert": {"user": owner, "hash": h}},
                                          upsert=True) for h in sizes], ordered=False)


def record_possession(db, owner: str, upload: dict, now: datetime) -> None:
    """The user has shown these blocks (verified at commit), even if the commit itself then fails; the block
    documents let a later negotiation count them and GC find them if nothing ever references them."""
    hashes = upload["blocks"]
    sizes = dict(zip(hashes, block_sizes(upload["size"], len(hashes)), strict=True))
    if sizes:
        _record(db, owner, sizes, now)


def _blocks_missing(missing: list[str]) -> Conflict:
    return Conflict("some blocks are not in the store yet; send them and commit again", code="blocks_missing",
                    details={"missing": missing})


def apply_content(db, owner: str, upload: dict, *, parent_id=None, name=None, node_id=None, check_base: bool,
                  session, device_id=None, now: datetime | None = None,
                  record_owners: bool = True) -> tuple[dict, bool]:
    """Inside `session`: write the upload's content as a new file or over `node_id`; returns (node, created)."""
    now = now or now_ms()
    hashes = upload["blocks"]
    new_set = list(dict.fromkeys(hashes))
    docs = _block_docs(db, new_set, session)
    gone = [h for h in new_set if docs.get(h, {}).get("state") == "deleting"]
    if gone:
        raise _blocks_missing(gone)
    fields = {"size": upload["size"], "content_hash": content_hash(hashes), "blocks": hashes,
              "mtime": upload.get("mtime") or now}
    if node_id is not None:
        node = get_node(db, owner, node_id, session)
        if check_base:
            check_rev(node, upload.get("base_rev"))
        if node["kind"] != "file":
            raise Conflict("only a file's content can be overwritten", code="not_a_file", details={"id": node_id})
        old_set = list(dict.fromkeys(node.get("blocks") or []))
        extra = {}
        if name is not None and name != node["name"]:
            extra["name"] = name
        if parent_id is not None and parent_id != node["parent_id"]:
            extra["parent_id"] = parent_id
        if node.get("content_hash") != fields["content_hash"]:
            versions.keep(db, owner, node, now, session)  # the replaced content stays restorable
        doc = write_node(db, owner, node, {**fields, **extra}, session=session, device_id=device_id, content=True,
                         emit=False)
        created = False
    else:
        folder = live_folder(db, owner, parent_id, session)
        check_free(db, owner, folder["_id"], name, session)
        doc = tree.new_node(owner, folder["_id"], name, "file", next_seq(db, owner, session), size=fields["size"],
                            content_hash=fields["content_hash"], blocks=hashes, mtime=fields["mtime"])
        db.nodes.insert_one(doc, session=session)
        old_set, created = [], True
    sizes = dict(zip(hashes, block_sizes(upload["size"], len(hashes)), strict=True))
    old, new = set(old_set), set(new_set)
    ops = [UpdateOne({"_id": h}, {"$inc": {"refs": 1}, "$set": {"zero_since": None, "state": "live", "size": sizes[h]},
                                  "$setOnInsert": {"created_at": now}}, upsert=True) for h in new_set if h not in old]
    # blocks this user now holds the same way as ones still referenced: writing them takes part in the conflict
    ops += [UpdateOne({"_id": h}, {"$set": {"state": "live", "zero_since": None}}) for h in new_set if h in old]
    ops += [UpdateOne({"_id": h}, {"$inc": {"refs": -1}}) for h in old_set if h not in new]
    if ops:
        db.blocks.bulk_write(ops, ordered=False, session=session)
    dropped = [h for h in old_set if h not in new]
    if dropped:
        db.blocks.update_many({"_id": {"$in": dropped}, "refs": {"$lte": 0}}, {"$set": {"zero_since": now}},
                              session=session)
    if new_set and record_owners:
        db.block_owners.bulk_write([UpdateOne({"_id": f"{owner}:{h}"}, {"$setOnInsert": {"user": owner, "hash": h}},
                                              upsert=True) for h in new_set], ordered=False, session=session)
    events.emit_many(db, [("node.changed", owner, {"node_id": doc["_id"], "seq": doc["seq"], "device_id": device_id}),
                          ("file.committed", owner, {"node_id": doc["_id"], "upload_id": upload["_id"],
                                                     "device_id": device_id})], session=session, now=now)
    eventlog.record(db, owner, "created" if created else "updated", [doc], session)
    if (upload.get("policy") or {}).get("encryption") == "at_rest":  # the plaintext window: seal now, not at
        replication.request_placement(db, owner, doc["_id"], session=session, now=now)  # the next pass
    db.uploads.update_one({"_id": upload["_id"]},
                          {"$set": {"status": "committed", "committed_at": now,
                                    "result": {"node_id": doc["_id"], "created": created}}}, session=session)
    return doc, created


def _committed(db, owner: str, upload: dict, session=None) -> tuple[dict, bool]:
    result = upload.get("result") or {}
    return get_node(db, owner, result.get("node_id"), session), bool(result.get("created"))


def _check_open(upload: dict, now: datetime) -> None:
    expires_at = as_utc(upload.get("expires_at"))
    if upload.get("status") == "expired" or (expires_at is not None and expires_at <= now):
        raise Gone("the upload expired; negotiate it again", code="upload_expired",
                   details={"upload_id": upload["_id"]})


def commit_upload(db, mongo, store, owner: str, upload_id, *, session=None, device_id=None,
                  now: datetime | None = None) -> tuple[dict, bool]:
    """Commit an upload: (node, created). Committing again returns the same node and changes nothing."""
    now = now or now_ms()
    upload = get_upload(db, owner, upload_id, session)
    if upload["status"] == "committed":
        return _committed(db, owner, upload, session)
    _check_open(upload, now)
    prover = upload.get("prover") or owner
    same_content = owns_content(db, prover, upload.get("content_hash") or content_hash(upload["blocks"]))
    missing = [] if same_content else verify_blocks(db, store, owner, upload, now)
    if missing:
        raise _blocks_missing(missing)

    def fn(s):
        again = get_upload(db, owner, upload_id, s)
        if again["status"] == "committed":
            return _committed(db, owner, again, s)
        _check_open(again, now)
        return apply_content(db, owner, again, parent_id=again["parent_id"], name=again["name"],
                             node_id=again.get("node_id"), check_base=True, session=s, device_id=device_id, now=now,
                             record_owners=not same_content)

    try:
        return run(mongo, session, fn)
    except Conflict:
        if not same_content:  # the blocks were shown even though the commit cannot go through
            record_possession(db, prover, upload, now)
        raise


def commit_into(db, store, owner: str, upload: dict, *, parent_id=None, name=None, node_id=None, session,
                device_id=None, now: datetime | None = None) -> dict:
    """For the ops referee: write an upload's content where it decided (new file under parent_id/name, or over
    node_id), without a base_rev check, inside its session. Raises 409 blocks_missing / 410 upload_expired."""
    now = now or now_ms()
    if upload.get("status") == "committed":
        return _committed(db, owner, upload, session)[0]
    _check_open(upload, now)
    missing = verify_blocks(db, store, owner, upload, now)
    if missing:
        raise _blocks_missing(missing)
    if node_id is None:
        name = check_name(name)
    if session is None:
        raise ValueError("commit_into runs inside the caller's transaction: pass session=")
    return apply_content(db, owner, upload, parent_id=parent_id, name=name, node_id=node_id, check_base=False,
                         session=session, device_id=device_id, now=now)[0]


def upload_json(upload: dict) -> dict:
    """The negotiation's answer: CONTRACT §3's fields plus `missing_count` and `next_after` (the cursor of
    GET …/urls when only a window of URLs was signed; null when `missing` is complete)."""
    return {"upload_id": upload["_id"], "expires_at": tree.iso(upload["expires_at"]),
            "missing": upload.get("missing", []), "missing_count": upload.get("missing_count", 0),
            "next_after": upload.get("next_after"),
            "store": upload["put_stores"][-1] if upload.get("missing") and upload.get("put_stores") else None,
            "store_fallback": bool(upload.get("store_fallback"))}


__all__ = ["negotiate_upload", "upload_urls", "commit_upload", "commit_into", "verify_blocks", "apply_content",
           "content_hash", "node_json", "EMPTY_HASH"]
