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
