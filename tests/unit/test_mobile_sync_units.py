"""Pure pieces of mobile sync: the feed cursor and the client's block hashing (CONTRACT §3)."""

import hashlib

import pytest

from clients.sync_client.hashing import BLOCK_SIZE, hash_file, read_block
from mobile_api.sync import decode_cursor, encode_cursor
from runtime.errors import BadRequest


def test_cursor_round_trip_and_refusals():
    assert decode_cursor(None) == 0 and decode_cursor("") == 0
    for seq in (0, 1, 123456789012):
        assert decode_cursor(encode_cursor(seq)) == seq
    for bad in ("x", "czE6", "czE6LTE", "bjE6NQ", "czE6Ng==extra", "czE6wrI"):  # junk, "s1:", "s1:-1", "n1:5"
        with pytest.raises(BadRequest) as err:
            decode_cursor(bad)
        assert err.value.code == "invalid_cursor"


def test_empty_file_hash(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert hash_file(path) == ([], hashlib.sha256(b"").hexdigest(), 0)


def test_blocks_are_exactly_4_mib_and_content_hash_covers_raw_digests(tmp_path):
    data = bytes(range(256)) * (BLOCK_SIZE // 256) + b"tail"
    path = tmp_path / "f"
    path.write_bytes(data)
    blocks, content_hash, size = hash_file(path)
    digests = [hashlib.sha256(data[:BLOCK_SIZE]).digest(), hashlib.sha256(b"tail").digest()]
    assert blocks == [{"hash": digests[0].hex(), "size": BLOCK_SIZE}, {"hash": digests[1].hex(), "size": 4}]
    assert content_hash == hashlib.sha256(b"".join(digests)).hexdigest() and size == len(data)
    assert read_block(path, 1) == b"tail"
