"""GraphQL `search` (CONTRACT §7, §9): the search index's hits for the caller, resolved as current nodes."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def env(env, tmp_path):
    env["PCLOUD_DATA_DIR"] = str(tmp_path / "data")  # this test's own search index
    return env


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


SEARCH = '''query($q: String!, $t: [String!]) { search(q: $q, types: $t) { items { score node { id type
  ... on faces_Person { name } } } nextCursor } }'''


def test_search_finds_the_callers_nodes_only(client, make_user, install_photos, gql_as, running_indexer):
    install_photos()
    alice, bob = gql_as(make_user()), gql_as(make_user())
    person = alice.ok('mutation { add_faces_Person(input: {name: "Zoë Quinn"}) { id } }')["add_faces_Person"]["id"]
    alice.ok('mutation { add_photos_Album(input: {title: "Zoe at the beach"}) { id } }')

    def hits(caller, q, types=None):
        return caller.ok(SEARCH, {"q": q, "t": types})["search"]["items"]

    assert wait_for(lambda: len(hits(alice, "zoe")) == 2) is True
    found = hits(alice, "quinn", ["faces.Person"])
    assert [(h["node"]["id"], h["node"]["name"]) for h in found] == [(person, "Zoë Quinn")] and found[0]["score"] > 0
    assert hits(bob, "zoe") == []
    assert alice.codes(SEARCH, {"q": "zoe", "t": ["photos.Nope"]}) == ["BAD_USER_INPUT"]
    assert alice.codes('{ search(q: "zoe", first: 501) { items { score } } }') == ["BAD_USER_INPUT"]
    assert alice.codes('{ search(q: "zoe", after: "not-a-cursor") { items { score } } }') == ["BAD_USER_INPUT"]
    # A deleted node is no hit, even before the index has caught up.
    alice.ok(f'mutation {{ deleteNode(id: "{person}") }}')
    assert [h["node"]["type"] for h in hits(alice, "zoe")] == ["photos.Album"]
