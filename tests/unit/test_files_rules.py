"""Pure rules of the files service: names, block lists, content hashes, cursors, ranges over blocks."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest

from functions.files import reading, tree, uploads
from runtime.errors import ApiError

BLOCK = uploads.BLOCK_SIZE
H = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize("name", ["a/b", "a\x00b", ".", "..", "", "x" * 256, "é" * 128, None, 7, ["a"]])
def test_invalid_names(name):
    with pytest.raises(ApiError) as caught:
        tree.check_name(name)
    assert caught.value.status == 400 and caught.value.code == "invalid_name"


def test_names_are_stored_nfc_and_compared_casefolded():
    nfd = unicodedata.normalize("NFD", "Ångström.txt")
    assert tree.check_name(nfd) == unicodedata.normalize("NFC", nfd)
    assert tree.name_key(nfd) == tree.name_key("ÅNGSTRÖM.TXT") == tree.name_key("ångström.txt")
    assert tree.name_key("Straße") == tree.name_key("STRASSE")
    assert tree.check_name("x" * 255) == "x" * 255
    assert tree.check_name("...") == "..."
    assert tree.check_name(" .hidden ") == " .hidden "


def test_lone_surrogates_are_invalid_names():
    with pytest.raises(ApiError) as caught:
        tree.check_name("bad\ud800")
    assert caught.value.code == "invalid_name"


def test_block_lists():
    assert uploads.check_blocks([], 0, 10) == []
    H2 = hashlib.sha256(b"y").hexdigest()
    assert uploads.check_blocks([{"hash": H, "size": BLOCK}, {"hash": H, "size": BLOCK}, {"hash": H2, "size": 1}],
                                2 * BLOCK + 1, 10) == [H, H, H2]
    cases = [
        ([{"hash": H.upper(), "size": 1}], 1, "invalid_hash"),
        ([{"hash": H, "size": BLOCK - 1}, {"hash": H, "size": 1}], BLOCK, "invalid_block_size"),
        ([{"hash": H, "size": True}], 1, "invalid_block_size"),
        ([{"hash": H, "size": 0}], 0, "invalid_block_size"),
        ([{"hash": H, "size": 5}], 6, "size_mismatch"),
        ([{"hash": H, "size": BLOCK}, {"hash": H, "size": 5}], BLOCK + 5, "invalid_block_size"),
        ([{"hash": H, "size": 5}], True, "invalid_size"),
        ("blocks", 1, "invalid_blocks"),
        (["x"], 1, "invalid_blocks"),
        ([{"hash": H, "size": BLOCK}] * 3, 3 * BLOCK, "too_many_blocks"),
    ]
    for blocks, size, code in cases:
        with pytest.raises(ApiError) as caught:
            uploads.check_blocks(blocks, size, 2)
        assert caught.value.code == code, (blocks, size)


def test_content_hash_is_sha256_of_the_raw_block_digests():
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    assert uploads.content_hash([a.hex(), b.hex()]) == hashlib.sha256(a + b).hexdigest()
    assert uploads.content_hash([]) == hashlib.sha256(b"").hexdigest() == uploads.EMPTY_HASH


def test_block_sizes_and_mtime():
    assert uploads.block_sizes(BLOCK * 2 + 3, 3) == [BLOCK, BLOCK, 3]
    assert uploads.block_sizes(0, 0) == []
    assert uploads.parse_mtime("2024-01-02T03:04:05.123456+02:00").isoformat() == "2024-01-02T01:04:05.123000+00:00"
    assert uploads.parse_mtime(0).year == 1970
    for bad in ("soon", True, [], "2024-13-01T00:00:00Z"):
        with pytest.raises(ApiError):
            uploads.parse_mtime(bad)


def test_cursors_round_trip_and_foreign_ones_are_400():
    assert tree.decode_cursor(tree.encode_cursor("zürich")) == "zürich"
    assert tree.decode_cursor(None) is None
    for bad in ("abc", "!!!", tree.encode_cursor("x")[:-2] + "__"):
        with pytest.raises(ApiError) as caught:
            tree.decode_cursor(bad)
        assert caught.value.code == "invalid_cursor"


class _Blocks:
    """A store of in-memory blocks (the read side of BlobStore) to check the offsets arithmetic."""

    def __init__(self, blocks: dict[str, bytes]):
        self.blocks, self.reads = blocks, []

    def open_range(self, digest, start=0, end=None):
        self.reads.append((digest, start, end))
        data = self.blocks[digest]
        return iter([data[start:(len(data) if end is None else end + 1)]])


def test_iter_content_reads_only_the_blocks_a_range_needs():
    parts = [bytes([i]) * BLOCK for i in range(3)] + [b"tail"]
    hashes = [f"{i:064x}" for i in range(4)]
    store = _Blocks(dict(zip(hashes, parts, strict=True)))
    node = {"blocks": hashes}
    whole = b"".join(parts)
    for start, end in ((0, len(whole) - 1), (BLOCK - 2, BLOCK + 1), (3 * BLOCK, 3 * BLOCK + 3), (5, 5)):
        store.reads.clear()
        assert b"".join(reading.iter_content(store, node, start, end)) == whole[start:end + 1]
    assert store.reads == [(hashes[0], 5, 5)]
