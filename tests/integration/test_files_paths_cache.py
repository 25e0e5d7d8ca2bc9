"""Paths for a batch of events cost one walk up the tree (the mobile bulk path records 100 renames at once):
every folder walked through is cached with its own path."""

from __future__ import annotations

from functions.files import paths


class _NoDatabase:
    """Any lookup fails: what the cache already knows must not be looked up again."""

    @property
    def nodes(self):
        raise AssertionError("looked up a folder the cache already had")


def test_a_walk_caches_every_folder_it_passes(files_api, clients):
    api = files_api()
    root = api.root()
    a = api.folder(root["id"], "A")
    b = api.folder(a["id"], "B")
    first = api.upload(b["id"], "one.jpg", b"1")
    second = api.upload(b["id"], "two.jpg", b"2")
    beside = api.upload(a["id"], "three.jpg", b"3")
    owner = api.user.id
    node = clients.db.nodes.find_one({"_id": first["id"]})
    cache: dict[str, str] = {}
    assert paths.path_of(clients.db, owner, node, cache=cache) == "/A/B/one.jpg"
    assert cache == {b["id"]: "/A/B", a["id"]: "/A", root["id"]: "/"}
    again = [clients.db.nodes.find_one({"_id": n["id"]}) for n in (second, beside)]
    assert [paths.path_of(_NoDatabase(), owner, d, cache=cache) for d in again] == ["/A/B/two.jpg", "/A/three.jpg"]
    assert paths.path_of(_NoDatabase(), owner, clients.db.nodes.find_one({"_id": b["id"]}), cache=cache) == "/A/B"
