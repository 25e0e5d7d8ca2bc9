"""The generic and typed GraphQL API through the gateway (CONTRACT §7)."""

from __future__ import annotations

CREATE = "mutation($t: String!, $d: JSON!) { createNode(type: $t, data: $d) { id type rev data createdAt } }"


def test_create_read_update_delete_generic(client, make_user, install_photos, gql_as):
    install_photos()
    gql = gql_as(make_user())
    node = gql.ok(CREATE, {"t": "photos.Image", "d": {"file_id": "f1", "name": "Beach", "width": 10}})["createNode"]
    assert node["type"] == "photos.Image" and node["rev"] == 1
    assert node["data"] == {"file_id": "f1", "name": "Beach", "width": 10}
    got = gql.ok("query($id: ID!) { node(id: $id) { id rev data ... on photos_Image { name width } } }",
                 {"id": node["id"]})["node"]
    assert got["name"] == "Beach" and got["width"] == 10
    upd = gql.ok("mutation($id: ID!) { updateNode(id: $id, data: {width: null, height: 5}, rev: 1) { rev data } }",
                 {"id": node["id"]})["updateNode"]
    assert upd == {"rev": 2, "data": {"file_id": "f1", "name": "Beach", "height": 5}}
    stale = gql("mutation($id: ID!) { updateNode(id: $id, data: {height: 6}, rev: 1) { rev } }", {"id": node["id"]})
    assert [e["extensions"]["code"] for e in stale["errors"]] == ["CONFLICT"]
    page = gql.ok('{ nodes(type: "photos.Image", where: {height: 5}) { items { id } nextCursor } }')["nodes"]
    assert page == {"items": [{"id": node["id"]}], "nextCursor": None}
    assert gql.ok("mutation($id: ID!) { deleteNode(id: $id) }", {"id": node["id"]}) == {"deleteNode": True}
    assert gql.ok("query($id: ID!) { node(id: $id) { id } }", {"id": node["id"]}) == {"node": None}


def _count(clients):
    return clients.db.graph_nodes.count_documents({}), clients.db.events.count_documents({})


def test_typed_api_with_relations_kept_both_ways(client, clients, make_user, install_photos, gql_as):
    install_photos()
    gql = gql_as(make_user())
    img = gql.ok('mutation { add_photos_Image(input: {file_id: "f1", name: "Lake", tags: ["a", "b"]}) { id rev } }')[
        "add_photos_Image"]
    ann = gql.ok('mutation { add_faces_Person(input: {name: "Ann"}) { id } }')["add_faces_Person"]["id"]
    bob = gql.ok('mutation { add_faces_Person(input: {name: "Bob"}) { id } }')["add_faces_Person"]["id"]
    face = gql.ok("mutation($i: ID!, $p: ID!) { add_faces_Face(input: {image: $i, person: $p, score: 0.9, "
                  "box: {top: 1, left: 2}}) { id image { id name } person { name } box } }",
                  {"i": img["id"], "p": ann})["add_faces_Face"]
    assert face["image"] == {"id": img["id"], "name": "Lake"}
    assert face["person"] == {"name": "Ann"} and face["box"] == {"top": 1, "left": 2}
    # The inverse side was written in the same transaction: the image lists its face, Ann hers.
    got = gql.ok("query($i: ID!) { get_photos_Image(id: $i) { rev tags faces { id person { name } } } }",
                 {"i": img["id"]})["get_photos_Image"]
    assert got == {"rev": 2, "tags": ["a", "b"], "faces": [{"id": face["id"], "person": {"name": "Ann"}}]}
    # Moving the face to Bob takes it off Ann's list.
    gql.ok("mutation($f: ID!, $p: ID!) { update_faces_Face(id: $f, set: {person: $p}) { id } }",
           {"f": face["id"], "p": bob})
    people = gql.ok("{ query_faces_Person { items { name faces { id } } } }")["query_faces_Person"]["items"]
    assert sorted((p["name"], [f["id"] for f in p["faces"]]) for p in people) == [("Ann", []),
                                                                                  ("Bob", [face["id"]])]
    # Filters are ANDed equalities; a relation compares the target's id.
    found = gql.ok("query($p: ID!) { query_faces_Face(filter: {person: $p, score: 0.9}) { items { id } } }",
                   {"p": bob})["query_faces_Face"]["items"]
    assert found == [{"id": face["id"]}]
    # Deleting the face removes it from the image and from Bob.
    assert gql.ok("mutation($f: ID!) { delete_faces_Face(id: $f) }", {"f": face["id"]})["delete_faces_Face"]
    got = gql.ok("query($i: ID!) { get_photos_Image(id: $i) { faces { id } } }", {"i": img["id"]})
    assert got["get_photos_Image"]["faces"] == []
    events = [(e["type"], e["node_type"], e["data"]["changed"]) for e in clients.db.events.find().sort("seq", 1)]
    assert ("graph.node.deleted", "faces.Face", ["box", "image", "person", "score"]) in events
    assert ("graph.node.updated", "photos.Image", ["faces"]) in events


def test_every_mutation_writes_its_event(client, clients, make_user, install_photos, gql_as):
    install_photos()
    user = make_user()
    gql = gql_as(user)
    node = gql.ok(CREATE, {"t": "photos.Album", "d": {"title": "Summer"}})["createNode"]
    gql.ok("mutation($id: ID!) { updateNode(id: $id, data: {title: \"Winter\"}) { rev } }", {"id": node["id"]})
    gql.ok("mutation($id: ID!) { deleteNode(id: $id) }", {"id": node["id"]})
    events = list(clients.db.events.find({"subject": node["id"]}).sort("seq", 1))
    assert [e["type"] for e in events] == ["graph.node.created", "graph.node.updated", "graph.node.deleted"]
    assert all(e["owner"] == user.id and e["node_type"] == "photos.Album" for e in events)
    assert events[0]["data"]["node"]["data"] == {"title": "Summer"}
    assert events[0]["data"]["changed"] == ["title"]
    assert [e["data"]["search"] for e in events] == [{"title": "Summer"}, {"title": "Winter"}, {"title": "Winter"}]
    assert events[1]["data"]["node"]["rev"] == 2 and "cause" not in events[1]


def test_schema_is_served_as_sdl(client, make_user, install_photos):
    install_photos()
    r = client.get("/graph/v1/schema.graphql", headers=make_user().headers)
    assert r.status_code == 200 and r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert "interface Node" in text and "type photos_Image implements Node" in text
    assert "add_faces_Face(input: faces_Face_Input!): faces_Face!" in text
    assert "faces(first: Int = 100): [faces_Face!]!" in text


def test_bad_input_is_a_graphql_error_and_writes_nothing(client, clients, make_user, install_photos, gql_as):
    install_photos()
    gql = gql_as(make_user())
    other = gql_as(make_user())
    album = gql.ok(CREATE, {"t": "photos.Album", "d": {"title": "A"}})["createNode"]["id"]
    theirs = other.ok(CREATE, {"t": "photos.Album", "d": {"title": "B"}})["createNode"]["id"]
    before = _count(clients)
    cases = [
        ("{ nodes(type: ", None),                                                      # malformed
        ("{ nope }", None),                                                            # unknown field in query
        (CREATE, {"t": "photos.Nope", "d": {}}),                                       # unknown type
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "colour": "red"}}),       # unknown field
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "width": "wide"}}),       # wrong scalar
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "width": 2**40}}),        # Int overflow
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "taken_at": "yesterday"}}),  # bad DateTime
        (CREATE, {"t": "photos.Image", "d": {"name": "no file id"}}),                  # required missing
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "album": theirs}}),        # another user's node
        (CREATE, {"t": "faces.Face", "d": {"image": album}}),                          # node of another type
        (CREATE, {"t": "photos.Image", "d": ["not", "an", "object"]}),
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "gps": {"a\u0000": 1}}}),   # key BSON refuses
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "gps": {"$where": 1}}}),
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "gps": _nested(40)}}),    # too deep
        (CREATE, {"t": "photos.Image", "d": {"file_id": "f", "tags": ["a", None]}}),
        ('{ nodes(type: "photos.Image", where: {colour: "red"}) { items { id } } }', None),
        ('{ nodes(type: "photos.Image", first: 501) { items { id } } }', None),
        ('{ nodes(type: "photos.Image", after: "zzz") { items { id } } }', None),
        ('mutation { add_photos_Image(input: {file_id: 5}) { id } }', None),
    ]
    for query, variables in cases:
        out = gql(query, variables)
        assert out["errors"], query
        assert {e["extensions"]["code"] for e in out["errors"]} == {"BAD_USER_INPUT"}, (query, out)
    assert _count(clients) == before
    for raw in ("{not json", "[" * 100_000 + "]" * 100_000):
        r = gql.client.post("/graph/v1/graphql", data=raw, content_type="application/json", headers=gql.headers)
        assert r.status_code == 200 and r.json["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    for body in ([], {"query": 5}, {"query": "{ __typename }", "variables": [1]}):
        r = gql.client.post("/graph/v1/graphql", json=body, headers=gql.headers)
        assert r.status_code == 200 and r.json["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert _count(clients) == before


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_anonymous_is_401(client):
    r = client.post("/graph/v1/graphql", json={"query": "{ __typename }"})
    assert r.status_code == 401


def test_limits(client, clients, make_user, install_photos, gql_as):
    from runtime.ids import new_id, utcnow

    install_photos()
    user = make_user()
    gql = gql_as(user)
    deep = "{ nodes(type: \"faces.Face\") { items { ... on faces_Face { image { faces { image { faces { image " \
           "{ faces { image { id } } } } } } } } } } }"
    assert gql.codes(deep) == ["LIMIT"]
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }"
    assert gql.codes(aliases) == ["LIMIT"]
    costly = ('{ nodes(type: "photos.Image", first: 500) { items { ... on photos_Image { faces(first: 100) '
              '{ id } } } } }')
    out = gql(costly)
    assert [e["extensions"]["code"] for e in out["errors"]] == ["LIMIT"] and out["errors"][0]["extensions"][
        "limit"] == "cost"
    # More than 1,000 nodes in one response: 500 images with two faces each (set up straight in the database).
    now = utcnow()
    images, faces = [], []
    for _ in range(500):
        iid = new_id()
        fids = [new_id(), new_id()]
        images.append({"_id": iid, "owner": user.id, "type": "photos.Image", "rev": 1, "created_at": now,
                       "updated_at": now, "data": {"file_id": iid, "faces": fids}})
        faces += [{"_id": f, "owner": user.id, "type": "faces.Face", "rev": 1, "created_at": now,
                   "updated_at": now, "data": {"image": iid}} for f in fids]
    clients.db.graph_nodes.insert_many(images + faces)
    many = '{ nodes(type: "photos.Image", first: 500) { items { ... on photos_Image { faces(first: 2) { id } } } } }'
    out = gql(many)
    assert out["data"] is None and [e["extensions"]["code"] for e in out["errors"]] == ["LIMIT"]
    ok = gql.ok('{ nodes(type: "photos.Image", first: 300) { items { ... on photos_Image { faces(first: 2) { id } } '
                '} } }')
    assert len(ok["nodes"]["items"]) == 300


def test_openapi_documents_the_graph(client):
    spec = client.get("/openapi.json").json
    post = spec["paths"]["/graph/v1/graphql"]["post"]
    assert post["operationId"] == "graphql"
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/GraphQLRequest")
    assert "GraphQLRequest" in spec["components"]["schemas"]
    assert spec["paths"]["/graph/v1/schema.graphql"]["get"]["operationId"] == "graphSchema"


def test_one_to_many_inverse_moves_the_child(client, make_user, install_photos, gql_as):
    install_photos(faces=False)
    gql = gql_as(make_user())
    img = gql.ok(CREATE, {"t": "photos.Image", "d": {"file_id": "f"}})["createNode"]["id"]
    first = gql.ok(CREATE, {"t": "photos.Album", "d": {"title": "A", "images": [img]}})["createNode"]["id"]
    second = gql.ok(CREATE, {"t": "photos.Album", "d": {"title": "B", "images": [img]}})["createNode"]["id"]
    albums = gql.ok("{ query_photos_Album { items { id images { id album { id } } } } }")["query_photos_Album"]
    by_id = {a["id"]: a["images"] for a in albums["items"]}
    # An image has one album: joining B took it out of A, and it points at B.
    assert by_id == {first: [], second: [{"id": img, "album": {"id": second}}]}
    gql.ok("mutation($id: ID!) { updateNode(id: $id, data: {album: null}) { id } }", {"id": img})
    assert gql.ok("query($id: ID!) { get_photos_Album(id: $id) { images { id } } }", {"id": second}) == {
        "get_photos_Album": {"images": []}}
