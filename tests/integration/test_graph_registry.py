"""The schema registry: SDL checks with clear problems, additive upgrades, removal (functions/graph/registry.py)."""

from __future__ import annotations

import pytest

from functions.graph import registry
from functions.graph.registry import SchemaProblems
from tests.fixtures.graph import FACES_SDL, PHOTOS_SDL


def _problems(db, ns, sdl, app="app-x", grants=frozenset()):
    return registry.check_namespace(db, ns, sdl, app, grants)


def _one(db, ns, sdl, fragment, app="app-x", grants=frozenset()):
    problems = _problems(db, ns, sdl, app, grants)
    assert any(fragment in p for p in problems), problems
    with pytest.raises(SchemaProblems) as err:
        registry.install_namespace(db, ns, sdl, app, grants)
    assert err.value.problems == problems
    return problems


def test_install_bumps_the_version_and_checks_nothing_wrong(clients):
    db = clients.db
    assert registry.version(db) == 0
    assert _problems(db, "photos", PHOTOS_SDL, "image-importer") == []
    v1 = registry.install_namespace(db, "photos", PHOTOS_SDL, "image-importer")
    v2 = registry.install_namespace(db, "faces", FACES_SDL, "face-detector", {"photos.Image"})
    assert 0 < v1 < v2 == registry.version(db)
    model = registry.merge(registry.namespaces(db))
    image = model["types"]["photos.Image"]["fields"]
    assert image["faces"] == {"kind": "Node", "target": "faces.Face", "list": True, "required": False,
                              "search": False, "inverse": "image", "ns": "faces"}
    assert model["types"]["faces.Face"]["fields"]["image"]["inverse"] == "faces"
    assert model["apps"] == {"faces": "face-detector", "photos": "image-importer"}
    indexes = {tuple(k for k, _ in v["key"]) for v in db.graph_nodes.index_information().values()}
    assert ("owner", "type", "data.file_id") in indexes


def test_sdl_problems_are_named(clients):
    db = clients.db
    before = registry.install_namespace(db, "photos", PHOTOS_SDL, "image-importer")
    _one(db, "faces", "type Face @node { image: photos_Picture }", "unknown type photos_Picture")
    _one(db, "faces", "type Face @node { box: Box }", "unknown type Box")
    _one(db, "faces", "type Face @node { a: String  a: Int }", "declared twice")
    _one(db, "faces", "type Face @node { a: String } type Face @node { b: String }", "defined twice")
    _one(db, "faces", "type photos_Face @node { a: String }", "outside namespace faces")
    _one(db, "faces", "type faces_Face @node { a: String }", "short name (Face)")
    _one(db, "faces", "type Face { a: String }", "@node")
    _one(db, "faces", "type Face @node { id: String }", "reserved")
    _one(db, "faces", "type Face @node { a: [[String]] }", "lists of lists")
    _one(db, "faces", "type Face @node { a: JSON @search }", "@search applies to")
    _one(db, "faces", "type Face @node { a: String @unique }", "unknown directive @unique")
    _one(db, "faces", "type Face @node { image: photos_Image @inverse(field: \"nope\") }", "names no field")
    _one(db, "faces", "enum Colour { RED }", "not supported")
    _one(db, "faces", "type Face @node { a: String", "SDL syntax error")
    _one(db, "faces", "extend type photos_Image { faces: [String] }", "needs an approved extend grant")
    _one(db, "faces", "extend type photos_Image { name: String }", "clashes with field name",
         grants={"photos.Image"})
    _one(db, "photos", "type Other @node { a: String }", "belongs to app image-importer", app="face-detector")
    _one(db, "Bad-Name", "type A @node { a: String }", "namespace")
    # All problems of one SDL are reported at once.
    many = _problems(db, "faces", "type Face @node { a: Nope  id: String  b: [[Int]] }")
    assert len(many) == 3, many
    assert registry.version(db) == before and [d["_id"] for d in registry.namespaces(db)] == ["photos"]


def test_upgrades_are_additive(clients):
    db = clients.db
    registry.install_namespace(db, "photos", PHOTOS_SDL, "image-importer")
    registry.install_namespace(db, "faces", FACES_SDL, "face-detector", {"photos.Image"})
    grown = PHOTOS_SDL + "\ntype Tag @node { label: String }\n"
    grown = grown.replace("camera: String", "camera: String\n  lens: String @search")
    assert registry.install_namespace(db, "photos", grown, "image-importer") > 0
    removed_field = grown.replace("  camera: String\n", "")
    _one(db, "photos", removed_field, "field photos_Image.camera was removed", app="image-importer")
    retyped = grown.replace("width: Int", "width: Float")
    _one(db, "photos", retyped, "photos_Image.width changed its type", app="image-importer")
    required = grown.replace("lens: String", "lens: String\n  iso: Int!")
    _one(db, "photos", required, "must be optional", app="image-importer")
    _one(db, "photos", grown.replace("type Tag @node { label: String }", ""), "photos_Tag was removed",
         app="image-importer")
    # Another namespace's extension field cannot be taken over by the owner's upgrade.
    _one(db, "photos", grown.replace("camera: String", "camera: String\n  faces: [String]"),
         "clashes with the field namespace faces added", app="image-importer")


def test_remove_namespace_keeps_the_rest_working(clients):
    from functions.graph import schema, service
    from runtime.identity import Identity

    db = clients.db
    registry.install_namespace(db, "photos", PHOTOS_SDL, "image-importer")
    registry.install_namespace(db, "faces", FACES_SDL, "face-detector", {"photos.Image"})
    ident = Identity(user_id="u" * 24)

    def create(t, data):
        out = service.run(db, clients.mongo, ident, {"query": "mutation($t: String!, $d: JSON!) { createNode("
                                                              "type: $t, data: $d) { id } }",
                                                     "variables": {"t": t, "d": data}})
        return out["data"]["createNode"]["id"]

    img = create("photos.Image", {"file_id": "f"})
    face = create("faces.Face", {"image": img})
    person = create("faces.Person", {"name": "Ann"})
    registry.remove_namespace(db, "photos")
    built = schema.current(db)
    assert "photos_Image" not in built.sdl and "type faces_Face implements Node" in built.sdl
    assert "image:" not in built.sdl.split("type faces_Face")[1].split("}")[0]  # relation to a gone type left out
    assert db.graph_nodes.count_documents({}) == 3  # without purge nothing is deleted
    registry.install_namespace(db, "photos", PHOTOS_SDL, "image-importer")  # back, with its data
    assert db.graph_nodes.find_one({"_id": img})["data"]["faces"] == [face]
    registry.remove_namespace(db, "faces", purge_nodes=True)
    assert [d["_id"] for d in db.graph_nodes.find()] == [img]
    assert db.graph_nodes.find_one({"_id": img})["data"] == {"file_id": "f"}  # the faces' extension field too
    deleted = {e["subject"]: e for e in db.events.find({"type": "graph.node.deleted"})}
    assert set(deleted) == {face, person}
    assert deleted[person]["data"]["search"] == {"name": "Ann"} and deleted[person]["owner"] == ident.user_id
    registry.remove_namespace(db, "faces")  # removing twice is fine
