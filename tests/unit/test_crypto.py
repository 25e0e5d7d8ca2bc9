"""The sealed-block format: AES-256-GCM bound to its owner and block hash; any change fails to open."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from runtime.crypto import OVERHEAD, SealBroken, seal, unseal


def test_seal_round_trips_and_binds_owner_and_block():
    key, data = secrets.token_bytes(32), b"block bytes" * 100
    digest = hashlib.sha256(data).hexdigest()
    sealed = seal(key, "alice", digest, data)
    assert len(sealed) == len(data) + OVERHEAD and data[:32] not in sealed
    assert seal(key, "alice", digest, data) != sealed  # a fresh nonce each time: equal blocks do not show
    assert unseal(key, "alice", digest, sealed) == data
    for args in ((secrets.token_bytes(32), "alice", digest, sealed), (key, "bob", digest, sealed),
                 (key, "alice", "0" * 64, sealed), (key, "alice", digest, sealed[:-1] + bytes([sealed[-1] ^ 1])),
                 (key, "alice", digest, b"PCS1short")):
        with pytest.raises(SealBroken):
            unseal(*args)
