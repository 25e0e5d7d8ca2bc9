"""Nobody sees or touches another user's nodes, through any entry point; apps only what they were granted."""

from __future__ import annotations

import time

from functions.graph import service
from runtime.identity import Identity
from runtime.tokens import issue_invocation_token

CREATE = "mutation($t: String!, $d: JSON!) { createNode(type: $t, data: $d) { id } }"


def test_another_users_nodes_are_invisible_everywhere(client, clients, make_user, install_photos, gql_as):
    install_photos()
    alice, bob_user = gql_as(make_user()), make_user()
    bob = gql_as(bob_user)
    bob.user_id = bob_user.id
    img = alice.ok(CREATE, {"t": "photos.Image", "d": {"file_id": "f1", "name": "Mine"}})["createNode"]["id"]
    face = alice.ok(CREATE, {"t": "faces.Face", "d": {"image": img}})["createNode"]["id"]
    before = clients.db.graph_nodes.find_one({"_id": img})
    events = clients.db.events.count_documents({})
    assert bob.ok("query($id: ID!) { node(id: $id) { id } }", {"id": img}) == {"node": None}
    assert bob.ok('{ nodes(type: "photos.Image") { items { id } nextCursor } }') == {"nodes": {"items": [],
                                                                                   "nextCursor": None}}
    assert bob.ok('{ nodes(type: "photos.Image", where: {name: "Mine"}) { items { id } } }')["nodes"]["items"] == []
    assert bob.ok("query($id: ID!) { get_photos_Image(id: $id) { id } }", {"id": img}) == {"get_photos_Image": None}
    assert bob.ok("{ query_photos_Image { items { id } } }")["query_photos_Image"]["items"] == []
    assert bob.ok('{ search(q: "Mine") { items { node { id } } } }') == {"search": {"items": []}}
    assert bob.codes("mutation($id: ID!) { updateNode(id: $id, data: {name: \"x\"}) { id } }", {"id": img}) == [
        "NOT_FOUND"]
    assert bob.codes("mutation($id: ID!) { update_photos_Image(id: $id, set: {name: \"x\"}) { id } }",
                     {"id": img}) == ["NOT_FOUND"]
    assert bob.codes("mutation($id: ID!) { deleteNode(id: $id) }", {"id": img}) == ["NOT_FOUND"]
    assert bob.codes("mutation($id: ID!) { delete_photos_Image(id: $id) }", {"id": img}) == ["NOT_FOUND"]
    # A relation to alice's node is refused as if it did not exist, typed or generic.
    assert bob.codes(CREATE, {"t": "faces.Face", "d": {"image": img}}) == ["BAD_USER_INPUT"]
    assert bob.codes("mutation($i: ID!) { add_faces_Face(input: {image: $i}) { id } }", {"i": img}) == [
        "BAD_USER_INPUT"]
    mine = bob.ok(CREATE, {"t": "photos.Image", "d": {"file_id": "f2"}})["createNode"]["id"]
    bob_face = bob.ok(CREATE, {"t": "faces.Face", "d": {"image": mine}})["createNode"]["id"]
    assert bob.codes("mutation($id: ID!, $i: ID!) { updateNode(id: $id, data: {image: $i}) { id } }",
                     {"id": bob_face, "i": img}) == ["BAD_USER_INPUT"]
    # Even a forged dangling reference stored in bob's data never resolves to alice's node.
    clients.db.graph_nodes.update_one({"_id": bob_face}, {"$set": {"data.image": img}})
    got = bob.ok("query($id: ID!) { get_faces_Face(id: $id) { image { id } } }", {"id": bob_face})
    assert got == {"get_faces_Face": {"image": None}}
    after = clients.db.graph_nodes.find_one({"_id": img})
    assert after == before  # alice's image: same rev, same data (bob's writes changed nothing of hers)
    assert clients.db.events.count_documents({"subject": {"$in": [img, face]}}) == 3  # alice's own only
    # bob's two creates and his image's inverse update, all his
    assert clients.db.events.count_documents({}) == events + 3
    assert clients.db.events.count_documents({"owner": bob.user_id}) == 3


def app_identity(user_id: str, app: str | None = None, grants: dict | None = None, execution_id: str | None = None,
                depth: int = 0, scopes: tuple[str, ...] = ("graph.read", "graph.write")) -> Identity:
    """An app invocation's identity as the gateway makes it from an invocation token."""
    return Identity(user_id=user_id, client_id=f"app:{app}" if app else "pcloud", scopes=scopes, app=app,
                    grants=grants, execution_id=execution_id, depth=depth)


def _run(clients, ident, query, variables=None):
    return service.run(clients.db, clients.mongo, ident, {"query": query, "variables": variables})


def _codes(out):
    return [e["extensions"]["code"] for e in out.get("errors") or []]


def test_apps_get_their_namespace_and_only_granted_types(clients, make_user, install_photos):
    install_photos()
    user = make_user()
    importer = app_identity(user.id, app="image-importer", execution_id="e1", depth=1)
    detector = app_identity(user.id, app="face-detector", grants={"types": {"photos.Image": ["read", "extend"]}},
                           execution_id="e2", depth=2)
    stranger = app_identity(user.id, app="stranger", grants={"types": {}})
    out = _run(clients, importer, CREATE, {"t": "photos.Image", "d": {"file_id": "f1"}})
    assert not out.get("errors"), out
    img = out["data"]["createNode"]["id"]
    event = clients.db.events.find_one({"subject": img})
    assert event["owner"] == user.id
    assert event["cause"] == {"app": "image-importer", "execution_id": "e1", "depth": 1}
    # The detector reads images and adds faces (its own namespace); the inverse side on the image is its
    # extension, so it is written too, caused by the detector.
    assert not _codes(_run(clients, detector, '{ nodes(type: "photos.Image") { items { id } } }'))
    out = _run(clients, detector, CREATE, {"t": "faces.Face", "d": {"image": img}})
    assert not out.get("errors"), out
    face = out["data"]["createNode"]["id"]
    upd = clients.db.events.find_one({"subject": img, "type": "graph.node.updated"})
    assert upd["data"]["changed"] == ["faces"] and upd["cause"]["app"] == "face-detector"
    # Extend: only the detector's own fields of the image; write on the rest is refused.
    assert _codes(_run(clients, detector, "mutation($id: ID!) { updateNode(id: $id, data: {name: \"x\"}) { id } }",
                       {"id": img})) == ["FORBIDDEN"]
    assert not _codes(_run(clients, detector, "mutation($id: ID!, $f: [ID!]) { update_photos_Image(id: $id, "
                                              "set: {faces: $f}) { id } }", {"id": img, "f": [face]}))
    assert _codes(_run(clients, detector, "mutation($id: ID!) { deleteNode(id: $id) }", {"id": img})) == ["FORBIDDEN"]
    assert _codes(_run(clients, detector, CREATE, {"t": "photos.Album", "d": {"title": "x"}})) == ["FORBIDDEN"]
    # Nothing granted: nothing readable, nothing writable; a node of an ungranted type is FORBIDDEN.
    assert _codes(_run(clients, stranger, '{ nodes(type: "photos.Image") { items { id } } }')) == ["FORBIDDEN"]
    assert _codes(_run(clients, stranger, "query($id: ID!) { node(id: $id) { id } }", {"id": img})) == ["FORBIDDEN"]
    assert _codes(_run(clients, stranger, "{ query_faces_Face { items { id } } }")) == ["FORBIDDEN"]
    assert _codes(_run(clients, stranger, CREATE, {"t": "faces.Face", "d": {"image": img}})) == ["FORBIDDEN"]
    # The importer reading the image's faces (the detector's types) is refused on that field only.
    out = _run(clients, importer, "query($id: ID!) { get_photos_Image(id: $id) { id faces { id } } }", {"id": img})
    assert _codes(out) == ["FORBIDDEN"]
    # An app acts for its user only: another user's invocation sees nothing of this user.
    other = app_identity(make_user().id, app="image-importer")
    assert _run(clients, other, "query($id: ID!) { node(id: $id) { id } }", {"id": img})["data"] == {"node": None}


def test_mutations_need_graph_write(clients, make_user, install_photos):
    install_photos()
    reader = app_identity(make_user().id, scopes=("graph.read",))
    out = _run(clients, reader, CREATE, {"t": "photos.Album", "d": {"title": "x"}})
    assert _codes(out) == ["FORBIDDEN"] and out["errors"][0]["extensions"]["required"] == "graph.write"
    assert clients.db.graph_nodes.count_documents({}) == 0
    assert not _codes(_run(clients, reader, '{ nodes(type: "photos.Album") { items { id } } }'))
    assert _codes(_run(clients, None, "{ __typename }")) == ["UNAUTHENTICATED"]


def test_invocation_tokens_through_the_gateway(client, clients, settings, make_user, install_photos, gql_as):
    """The real token path: the gateway turns an invocation token into the app's identity."""
    install_photos()
    user = make_user()

    def token(app, grants, scopes=("graph.read", "graph.write")):
        return issue_invocation_token(clients.keys, settings, user_id=user.id, app=app, scopes=list(scopes),
                                      grants=grants, execution_id="ex-1", depth=1, deadline=time.time() + 300)

    importer = gql_as({"Authorization": f"Bearer {token('image-importer', {})}"})
    img = importer.ok('mutation { add_photos_Image(input: {file_id: "f"}) { id } }')["add_photos_Image"]["id"]
    assert clients.db.graph_nodes.find_one({"_id": img})["owner"] == user.id
    assert clients.db.events.find_one({"subject": img})["cause"] == {"app": "image-importer",
                                                                     "execution_id": "ex-1", "depth": 1}
    stranger = gql_as({"Authorization": f"Bearer {token('stranger', {'types': {}})}"})
    assert stranger.codes("query($i: ID!) { get_photos_Image(id: $i) { id } }", {"i": img}) == ["FORBIDDEN"]
    reader = gql_as({"Authorization": f"Bearer {token('reader', {'types': {'photos.Image': ['read']}})}"})
    assert reader.ok("query($i: ID!) { get_photos_Image(id: $i) { id } }", {"i": img}) == {
        "get_photos_Image": {"id": img}}
    assert reader.codes("mutation($i: ID!) { deleteNode(id: $i) }", {"i": img}) == ["FORBIDDEN"]
    # Without graph.write the mutation is refused by the graph; without graph.read the gateway refuses.
    read_only = gql_as({"Authorization": f"Bearer {token('image-importer', {}, scopes=('graph.read',))}"})
    assert read_only.codes('mutation { add_photos_Image(input: {file_id: "g"}) { id } }') == ["FORBIDDEN"]
    no_graph = token("image-importer", {}, scopes=("files.read",))
    r = client.post("/graph/v1/graphql", json={"query": "{ __typename }"},
                    headers={"Authorization": f"Bearer {no_graph}"})
    assert r.status_code == 403 and r.json["error"]["details"]["required"] == "graph.read"
