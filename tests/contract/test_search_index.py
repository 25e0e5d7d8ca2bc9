"""One contract for every SearchIndex backend: the embedded SQLite FTS5 index and Meilisearch.

No Meilisearch server can be installed on this machine (it is not packaged on PyPI, Debian or npm — only
clients are — and prebuilt binary downloads are not possible here), so that backend's run is skipped unless
PCLOUD_TEST_MEILISEARCH_URL names a server (e.g. `docker run -p 7700:7700 getmeili/meilisearch:v1.11`).
"""

from __future__ import annotations

import os
import uuid

import pytest

from functions.search import service
from functions.search.index import SearchDoc, SearchIndex
from functions.search.query import parse
from runtime.errors import BadRequest

MEILI_URL = os.environ.get("PCLOUD_TEST_MEILISEARCH_URL")


@pytest.fixture(params=["sqlite", "meilisearch"])
def index(request, tmp_path) -> SearchIndex:
    if request.param == "sqlite":
        from functions.search.sqlite import SqliteSearchIndex

        idx = SqliteSearchIndex(tmp_path / "search" / "index.sqlite3")
    else:
        if not MEILI_URL:
            pytest.skip("no Meilisearch server here (not installable from PyPI/Debian/npm); "
                        "set PCLOUD_TEST_MEILISEARCH_URL to run this backend's contract")
        from functions.search.meilisearch import MeilisearchSearchIndex

        idx = MeilisearchSearchIndex(MEILI_URL, api_key=os.environ.get("PCLOUD_TEST_MEILISEARCH_KEY"),
                                     index=f"t{uuid.uuid4().hex[:10]}")
    yield idx
    idx.clear()
    idx.close()


def ids(index, owner, q, types=None, limit=50):
    items, _ = service.search(index, owner, q, types, limit, None)
    return [i["id"] for i in items]


@pytest.fixture
def seeded(index):
    index.upsert([
        SearchDoc("alice", "img1", "photos.Image", 1, {"name": "IMG_1.jpg", "path": "/Camera/IMG_1.jpg"}),
        SearchDoc("alice", "p1", "faces.Person", 2, {"name": "Zoë Müller"}),
        SearchDoc("alice", "p2", "faces.Person", 3, {"name": "Zoe"}),
        SearchDoc("alice", "f1", "files.node", 4,
                  {"name": "Holiday in Crete.txt", "path": "/Docs/Holiday in Crete.txt"}),
        SearchDoc("alice", "f2", "files.node", 5, {"name": "crete map.pdf", "path": "/Docs/crete map.pdf"}),
        SearchDoc("bob", "b1", "files.node", 1, {"name": "Holiday in Crete.txt", "path": "/Holiday in Crete.txt"}),
    ])
    index.flush()
    return index


def test_words_are_anded_case_and_accent_insensitive(seeded):
    assert sorted(ids(seeded, "alice", "crete")) == ["f1", "f2"]
    assert ids(seeded, "alice", "HOLIDAY crete") == ["f1"]
    assert ids(seeded, "alice", "holiday nothing") == []
    assert sorted(ids(seeded, "alice", "zoe")) == ["p1", "p2"]
    assert ids(seeded, "alice", "MULLER") == ["p1"]
    assert ids(seeded, "alice", "müller zoë") == ["p1"]


def test_prefix_phrase_and_exact_field(seeded):
    assert sorted(ids(seeded, "alice", "holi*")) == ["f1"]
    assert sorted(ids(seeded, "alice", "cre*")) == ["f1", "f2"]
    assert ids(seeded, "alice", '"in crete"') == ["f1"]
    assert ids(seeded, "alice", '"crete in"') == []
    assert ids(seeded, "alice", "name:zoe") == ["p2"]
    assert ids(seeded, "alice", 'name:"zoe muller"') == ["p1"]
    assert ids(seeded, "alice", "name:crete") == []
    assert ids(seeded, "alice", "IMG_1.jpg") == ["img1"]
    assert ids(seeded, "alice", "camera img_1") == ["img1"]


def test_type_filter_and_owner_isolation(seeded):
    assert ids(seeded, "alice", "zoe", types=["faces.Person"]) == ids(seeded, "alice", "zoe")
    assert ids(seeded, "alice", "crete", types=["photos.Image"]) == []
    assert ids(seeded, "bob", "crete") == ["b1"]
    assert ids(seeded, "bob", "zoe") == []
    assert ids(seeded, "carol", "crete") == []


def test_hits_carry_type_score_and_fields(seeded):
    items, _ = service.search(seeded, "alice", "holiday", None, 10, None)
    assert items[0]["id"] == "f1" and items[0]["type"] == "files.node"
    assert isinstance(items[0]["score"], float) and items[0]["fields"]["path"] == "/Docs/Holiday in Crete.txt"


def test_cursor_pages_through_every_hit_once(index):
    index.upsert([SearchDoc("u", f"d{i}", "files.node", i + 1, {"name": f"report {i}"}) for i in range(25)])
    index.flush()
    seen, cursor = [], None
    while True:
        items, cursor = service.search(index, "u", "report", None, 10, cursor)
        seen.extend(i["id"] for i in items)
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"d{i}" for i in range(25))


def test_newer_seq_wins_in_any_order_and_deletes_are_kept(index):
    index.upsert([SearchDoc("u", "n", "photos.Image", 5, {"name": "new name"})])
    index.upsert([SearchDoc("u", "n", "photos.Image", 3, {"name": "old name"})])  # late, older: ignored
    index.flush()
    assert ids(index, "u", "new") == ["n"] and ids(index, "u", "old") == []
    index.delete("u", [("n", 4)])  # older than what is held: ignored
    index.flush()
    assert ids(index, "u", "new") == ["n"]
    index.delete("u", [("n", 6)])
    index.upsert([SearchDoc("u", "n", "photos.Image", 5, {"name": "new name"})])  # redelivered: stays deleted
    index.flush()
    assert ids(index, "u", "new") == []
    index.upsert([SearchDoc("u", "n", "photos.Image", 7, {"name": "back again"})])
    index.flush()
    assert ids(index, "u", "back") == ["n"]


def test_bad_queries_are_clear_errors(index):
    for q in ("", "   ", "***", '""', "x" * 1001):
        with pytest.raises(BadRequest) as err:
            service.search(index, "u", q, None, 10, None)
        assert err.value.code == "invalid_query"
    with pytest.raises(BadRequest):
        service.search(index, "u", "x", None, 10, "garbage!")
    with pytest.raises(BadRequest):
        service.search(index, "u", "x", None, 0, None)


def test_query_syntax_characters_are_literals(seeded):
    for q in ('crete OR zoe', 'NOT crete', 'crete)', '(zoe', 'a" AND "b', "body:crete", "scope:x", "^crete", "-x"):
        ids(seeded, "alice", q)  # never an engine syntax error
    assert ids(seeded, "alice", "crete OR zoe") == []  # OR is a word here, and ANDed


def test_parse_shapes():
    q = parse('Zoë "in  Crete" holi* name:"A  B" x:y')
    assert [(t.text, t.prefix, t.phrase) for t in q.terms] == [("zoe", False, False), ("in crete", False, True),
                                                               ("holi", True, False)]
    assert q.exact == [("name", "a b"), ("x", "y")]
