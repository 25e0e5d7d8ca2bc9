"""What an app invocation may search: only the types its owner granted `read` (and files with files.read)."""

from functions.search.service import FILES_TYPE, documents_from, visible_types
from runtime.identity import Identity


def test_a_user_searches_everything_and_an_app_only_what_it_was_granted():
    user = Identity("u1")
    assert visible_types(user, None) is None and visible_types(user, ["photos.Image"]) == ["photos.Image"]
    app = Identity("u1", app="faces", grants={"actions": ["files.read"], "types": {"photos.Image": ["read"],
                                                                                   "notes.Note": ["extend"]}})
    assert visible_types(app, None) == sorted([FILES_TYPE, "photos.Image"])
    assert visible_types(app, ["notes.Note"]) == []
    assert visible_types(Identity("u1", app="x", grants={}), None) == []


def test_events_become_documents_and_deletes():
    evs = [
        {"type": "files.node.created", "owner": "u", "subject": "f", "seq": 1,
         "data": {"node": {"id": "f", "name": "a.jpg"}, "path": "/C/a.jpg"}},
        {"type": "files.node.trashed", "owner": "u", "subject": "g", "seq": 2, "data": {}},
        {"type": "graph.node.updated", "owner": "u", "subject": "n", "seq": 3, "node_type": "faces.Person",
         "data": {"node": {"id": "n"}, "search": {"name": "Zoe", "empty": ""}}},
        {"type": "graph.node.created", "owner": "u", "subject": "m", "seq": 4, "node_type": "faces.Face",
         "data": {"node": {"id": "m"}, "search": {}}},
        {"type": "devices.device.online", "owner": "u", "subject": "d", "seq": 5, "data": {}},
    ]
    upserts, deletes = documents_from(evs)
    assert [(d.id, d.type, d.fields) for d in upserts] == [("f", FILES_TYPE, {"name": "a.jpg", "path": "/C/a.jpg"}),
                                                           ("n", "faces.Person", {"name": "Zoe"})]
    assert deletes == [("u", "g", 2), ("u", "m", 4)]
