"""Folders encrypted at rest (issue 19): the placement worker seals a file's blocks with its owner's data key
(runtime/crypto.py) and keeps the ciphertext as ordinary content-addressed objects. Collection
`sealed_blocks` (`<owner>:<block hash>` → the ciphertext's address), owned here.

- A sealed copy is stored under the SHA-256 of its ciphertext, so replication, repair and the scrubber treat it
  like any block without ever holding a key, and the store never sees the plaintext block hash.
- Dedup: one sealed copy per (user, block): a user's encrypted files share blocks, other users' never do.
- A file is sealed while `sealed_rev` equals its `content_rev` (a new upload makes it plain again until the
  worker seals it). The worker writes only that field of the node, conditionally on the content it sealed.
- Plaintext goes once no file wants it in plain and a sealed copy exists (settle_unwanted); a sealed copy goes
  once the block is gone or its plaintext is back. So a block something still references always has one or the
  other, and a plain read of a block only sealed copies hold is served by decrypting one (`fallback`), never
  by writing the plaintext back.
"""

from __future__ import annotations

import hashlib

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from runtime.crypto import KeyRing, SealBroken, seal, unseal
from runtime.errors import ApiError
from runtime.ids import utcnow
from runtime.mongo import register_indexes
from runtime.store import BlobCorrupt, BlobNotFound, StoreUnavailable


@register_indexes
def ensure_indexes(db) -> None:
    db.sealed_blocks.create_index([("hash", ASCENDING)])
    db.sealed_blocks.create_index([("address", ASCENDING)])


class Sealer:
    def __init__(self, db, store, keyring: KeyRing):
        self.db, self.store, self.keyring = db, store, keyring

    @staticmethod
    def is_sealed(node: dict) -> bool:
        return node.get("sealed_rev") is not None and node.get("sealed_rev") == node.get("content_rev", 1)

    def addresses(self, owner: str, hashes: list[str]) -> list[str]:
        found = {d["hash"]: d["address"] for d in self.db.sealed_blocks.find(
            {"_id": {"$in": [f"{owner}:{h}" for h in hashes]}}, {"hash": 1, "address": 1})}
        return [found.get(h, h) for h in hashes]

    # -- sealing and unsealing one block

    def seal_block(self, owner: str, plain_hash: str) -> str:
        """The address of the owner's sealed copy of a block, made now when there is none."""
        existing = self.db.sealed_blocks.find_one({"_id": f"{owner}:{plain_hash}"})
        if existing is not None:
            return existing["address"]
        _, data = self.store.read_verified(plain_hash)
        sealed = seal(self.keyring.data_key(owner), owner, plain_hash, data)
        address = hashlib.sha256(sealed).hexdigest()
        self.store.put(address, sealed)
        try:
            self.db.sealed_blocks.insert_one({"_id": f"{owner}:{plain_hash}", "owner": owner, "hash": plain_hash,
                                              "address": address, "size": len(data), "created_at": utcnow()})
        except DuplicateKeyError:  # sealed meanwhile by another run: keep that one
            self.store.delete(address)
            return self.db.sealed_blocks.find_one({"_id": f"{owner}:{plain_hash}"})["address"]
        return address

    def open_sealed(self, doc: dict) -> bytes:
        """The plaintext of a sealed copy: the GCM tag checks each store's copy (it binds the owner and the block
        hash), so a copy that fails is reported corrupt and the next store's is tried."""
        key = self.keyring.data_key(doc["owner"])
        names = self.store.sources(doc["address"]) if hasattr(self.store, "sources") else self.store.names
        for name in names:
            try:
                sealed = self.store.read_raw(name, doc["address"])
            except (BlobNotFound, StoreUnavailable):
                continue
            try:
                return unseal(key, doc["owner"], doc["hash"], sealed)
            except SealBroken:
                if self.store.on_corrupt is not None:
                    self.store.on_corrupt(name, doc["address"])
        raise SealBroken(f"no store holds a sealed copy of {doc['hash']} that opens")

    def fallback(self, plain_hash: str) -> bytes | None:
        """Plain bytes of a block only sealed copies hold (ReplicatedBlobStore.fallback); None when none opens."""
        tried = []
        for doc in self.db.sealed_blocks.find({"hash": plain_hash}).limit(5):
            try:
                return self.open_sealed(doc)
            except (SealBroken, BlobNotFound, ApiError) as exc:
                tried.append(doc["address"])
                last = exc
        if tried:
            raise BlobCorrupt("no copy of the block opens: every sealed copy is missing or fails its check",
                              details={"hash": plain_hash, "sealed_copies": len(tried), "reason": str(last)})
        return None

    # -- a node to its folder's choice

    def converge(self, node: dict, encryption: str) -> dict | None:
        """Seal or unseal the node's current content to match `encryption`; the node as it now is."""
        hashes = list(dict.fromkeys(node.get("blocks") or []))
        rev = node.get("content_rev", 1)
        if encryption == "at_rest" and not self.is_sealed(node):
            for plain_hash in hashes:
                self.seal_block(node["owner"], plain_hash)
            self.db.nodes.update_one({"_id": node["_id"], "content_rev": rev, "blocks": node.get("blocks")},
                                     {"$set": {"sealed_rev": rev}})
        elif encryption != "at_rest" and self.is_sealed(node):
            for plain_hash in hashes:
                if self.store.head(plain_hash) is None:
                    self.store.put(plain_hash, self.store.get(plain_hash))  # get() opens a sealed copy
            self.db.nodes.update_one({"_id": node["_id"], "content_rev": rev}, {"$unset": {"sealed_rev": ""}})
        else:
            return node
        return self.db.nodes.find_one({"_id": node["_id"]})

    # -- what no file wants any more

    def settle_unwanted(self, address: str, have: list[str]) -> str:
        """`dropped` when the copies of an address no file wants could go (and went), else `unwanted`."""
        sealed_here = self.db.sealed_blocks.find_one({"address": address})
        if sealed_here is not None:  # a sealed copy: goes when its block is gone or its plaintext is back
            block_gone = self.db.blocks.find_one({"_id": sealed_here["hash"]}, {"_id": 1}) is None
            if block_gone or self.store.head(sealed_here["hash"]) is not None:
                self.db.sealed_blocks.delete_one({"_id": sealed_here["_id"]})
                self.store.delete(address)
                return "dropped"
            return "unwanted"
        sealed_copy = self.db.sealed_blocks.find_one({"hash": address})
        if sealed_copy is None or self.store.head(sealed_copy["address"]) is None:
            return "unwanted"  # plain block nobody needs: the block GC's business
        if self.db.uploads.find_one({"status": "pending", "blocks": address}, {"_id": 1}) is not None:
            return "unwanted"  # an upload may still commit it into a plain folder
        for name in have or self.store.names:
            self.store.delete_from(name, address)
        return "dropped"
