"""Search through the gateway (CONTRACT §9), kept current by the real indexer consuming the event log."""

from __future__ import annotations

import time

import pytest

from functions.search import reindex, service


@pytest.fixture
def env(env, tmp_path):
    env["PCLOUD_DATA_DIR"] = str(tmp_path / "data")  # this test's own search index (keys are made there too)
    return env


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def search(client, user, q, **params):
    resp = client.get("/search/v1", query_string={"q": q, **params}, headers=user.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json


def ids(client, user, q, **params):
    return [i["id"] for i in search(client, user, q, **params)["items"]]


def test_files_are_findable_by_name_and_path_and_follow_renames_and_trash(files_api, client, running_indexer):
    api = files_api()
    camera = api.folder(api.root()["id"], "Camera")
    node = api.upload(camera["id"], "Crème Brûlée.jpg", b"pudding")
    assert wait_for(lambda: ids(client, api.user, "creme brulee")) == [node["id"]]
    hit = search(client, api.user, "brul*")["items"][0]
    assert hit["type"] == "files.node" and hit["node"]["name"] == "Crème Brûlée.jpg" and hit["score"] > 0
    assert sorted(ids(client, api.user, "camera", type="files.node")) == sorted([camera["id"], node["id"]])
    assert ids(client, api.user, "camera", type="photos.Image") == []
    assert ids(client, api.user, 'path:"/Camera/Crème Brûlée.jpg"') == [node["id"]]
    api.call("PATCH", f"/nodes/{node['id']}", json={"name": "dessert.jpg", "base_rev": node["rev"]})
    assert wait_for(lambda: ids(client, api.user, "dessert")) == [node["id"]]
    assert ids(client, api.user, "brulee") == []
    api.call("DELETE", f"/nodes/{node['id']}")
    assert wait_for(lambda: ids(client, api.user, "dessert") == []) is True


def test_graph_nodes_are_findable_by_their_search_fields(install_photos, gql_as, client, make_user, running_indexer):
    install_photos()
    alice, bob = make_user(), make_user()
    made = gql_as(alice).ok('mutation { createNode(type: "faces.Person", data: {name: "Zoë Quinn"}) { id } }')
    person = made["createNode"]["id"]
    gql_as(alice).ok('mutation { createNode(type: "photos.Album", data: {title: "Zoe at the beach"}) { id } }')
    assert wait_for(lambda: len(ids(client, alice, "zoe")) == 2) is True
    assert ids(client, alice, "zoe", type="faces.Person") == [person]
    hit = search(client, alice, "quinn")["items"][0]
    assert hit["type"] == "faces.Person" and hit["node"]["data"]["name"] == "Zoë Quinn"
    assert ids(client, bob, "zoe") == []  # another user's nodes are never hits
    gql_as(alice).ok(f'mutation {{ updateNode(id: "{person}", data: {{name: "Zed"}}) {{ id }} }}')
    assert wait_for(lambda: ids(client, alice, "zed")) == [person]
    gql_as(alice).ok(f'mutation {{ deleteNode(id: "{person}") }}')
    assert wait_for(lambda: ids(client, alice, "zed") == []) is True


def test_paging_bad_input_and_isolation(files_api, client, running_indexer, make_user):
    api = files_api()
    root = api.root()
    for i in range(7):
        api.folder(root["id"], f"report {i}")
    assert wait_for(lambda: len(ids(client, api.user, "report")) == 7) is True
    first = search(client, api.user, "report", limit=3)
    second = search(client, api.user, "report", limit=3, cursor=first["next_cursor"])
    third = search(client, api.user, "report", limit=3, cursor=second["next_cursor"])
    assert third["next_cursor"] is None
    assert len({i["id"] for page in (first, second, third) for i in page["items"]}) == 7
    stranger = make_user()
    assert ids(client, stranger, "report") == []
    for params in ({"q": ""}, {"q": "x", "limit": "0"}, {"q": "x", "limit": "y"}, {"q": "x", "cursor": "nope"},
                   {"q": "x", "type": "Not A Type"}):
        resp = client.get("/search/v1", query_string=params, headers=stranger.headers)
        assert resp.status_code == 400, params
        assert resp.json["error"]["code"] in ("invalid_query", "invalid_parameter", "invalid_cursor")
    assert client.get("/search/v1?q=x").status_code == 401


def test_full_rebuild_restores_what_the_indexer_built(files_api, client, running_indexer, clients, settings,
                                                      install_photos, gql_as):
    install_photos()
    api = files_api()
    folder = api.folder(api.root()["id"], "Taxes")
    gql_as(api.user).ok('mutation { createNode(type: "photos.Album", data: {title: "Taxes 2025"}) { id } }')
    assert wait_for(lambda: len(ids(client, api.user, "taxes")) == 2) is True
    index = service.index_for(settings)
    index.clear()
    assert ids(client, api.user, "taxes") == []
    counts = reindex.rebuild(clients.db, index, progress=False)
    assert counts["files"] >= 1 and counts["graph_events"] >= 1
    found = ids(client, api.user, "taxes")
    assert folder["id"] in found and len(found) == 2
