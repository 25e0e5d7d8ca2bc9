"""Encryption at rest (issue 19): AES-256-GCM per block with a data key per user, data keys wrapped by a key
encryption key (KEK) from the key store. Collection `user_keys`, owned here.

- KEKs are 32-byte secrets in the key store (`$PCLOUD_DATA_DIR/secrets/storage-kek-<n>`), never in the
  database; `storage-kek-current` names the one new wraps use. Rotation makes a new KEK and re-wraps every
  user's data key with it (RFC 3394 AES key wrap): no block is rewritten, since blocks are encrypted with the
  data keys, which do not change. Old KEK files stay (retired) so a backup of the database from before the
  rotation can still be opened.
- A sealed block is `PCS1 | nonce (12) | ciphertext | tag (16)`; the nonce is random, the associated data
  binds the ciphertext to its owner and the plaintext block's SHA-256, so a sealed block cannot be passed off
  as another block or another user's.
"""

from __future__ import annotations

import os
import secrets
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from runtime.ids import utcnow
from runtime.keys import KeyStore

MAGIC = b"PCS1"
NONCE = 12
OVERHEAD = len(MAGIC) + NONCE + 16


class SealBroken(Exception):
    """A sealed block does not open: wrong key, wrong block, or altered bytes."""


def _aad(owner: str, plain_hash: str) -> bytes:
    return b"pcloud/block/v1|" + owner.encode() + b"|" + bytes.fromhex(plain_hash)


def seal(key: bytes, owner: str, plain_hash: str, data: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, _aad(owner, plain_hash))


def unseal(key: bytes, owner: str, plain_hash: str, sealed: bytes) -> bytes:
    if not sealed.startswith(MAGIC) or len(sealed) < OVERHEAD:
        raise SealBroken("not a sealed block")
    nonce = sealed[len(MAGIC):len(MAGIC) + NONCE]
    try:
        return AESGCM(key).decrypt(nonce, sealed[len(MAGIC) + NONCE:], _aad(owner, plain_hash))
    except InvalidTag:
        raise SealBroken("the sealed block fails its authentication tag") from None


class KeyRing:
    """Per-user data keys, created on first use, wrapped by the current KEK."""

    def __init__(self, db, keys: KeyStore):
        self.db = db
        self.keys = keys
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- KEKs in the key store

    def _pointer(self):
        return self.keys.secret_dir / "storage-kek-current"

    def kek_version(self) -> int:
        try:
            return int(self._pointer().read_text().strip())
        except FileNotFoundError:
            return 1

    def kek(self, version: int) -> bytes:
        return self.keys.secret(f"storage-kek-{int(version)}")

    def _set_version(self, version: int) -> None:
        self.keys.secret_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._pointer().with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(str(version))
        os.replace(tmp, self._pointer())

    # -- data keys

    def data_key(self, user_id: str) -> bytes:
        with self._lock:
            found = self._cache.get(user_id)
        if found is not None:
            return found
        doc = self.db.user_keys.find_one({"_id": user_id})
        if doc is None:
            version = self.kek_version()
            key = AESGCM.generate_key(bit_length=256)
            self.db.user_keys.update_one({"_id": user_id}, {"$setOnInsert": {
                "wrapped": aes_key_wrap(self.kek(version), key), "kek": version, "created_at": utcnow()}},
                upsert=True)
            doc = self.db.user_keys.find_one({"_id": user_id})  # a concurrent first use may have won
        try:
            key = aes_key_unwrap(self.kek(doc["kek"]), bytes(doc["wrapped"]))
        except InvalidUnwrap:
            raise SealBroken(f"the data key of {user_id} does not unwrap with KEK {doc['kek']}") from None
        with self._lock:
            self._cache[user_id] = key
        return key

    def rotate(self) -> dict:
        """A new KEK; every data key re-wrapped with it (blocks untouched). Returns the version and the count."""
        old = self.kek_version()
        new = old + 1
        new_kek = self.kek(new)  # created on disk before anything is wrapped with it
        rewrapped = 0
        for doc in self.db.user_keys.find({"kek": {"$ne": new}}):
            key = aes_key_unwrap(self.kek(doc["kek"]), bytes(doc["wrapped"]))
            done = self.db.user_keys.update_one({"_id": doc["_id"], "kek": doc["kek"]},
                                                {"$set": {"wrapped": aes_key_wrap(new_kek, key), "kek": new,
                                                          "rewrapped_at": utcnow()}})
            rewrapped += done.modified_count
        self._set_version(new)
        # keys wrapped meanwhile by the old version are still readable; the next rotation re-wraps them too
        with self._lock:
            self._cache.clear()
        return {"kek_version": new, "rewrapped": rewrapped}
