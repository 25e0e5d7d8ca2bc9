"""GET /events/v1 through the gateway: the caller's events only, oldest first, filtered, paged, bad input 400."""

from __future__ import annotations

from runtime import events


def _seed(clients, owner, n, type="graph.node.created"):
    return [events.append(clients.db, owner=owner, type=type, subject=f"{owner}-{i}", data={"i": i})
            for i in range(n)]


def test_events_are_the_callers_only_oldest_first_and_paged(client, clients, make_user):
    alice, bob = make_user(), make_user()
    _seed(clients, alice.id, 3)
    _seed(clients, alice.id, 2, type="files.node.created")
    _seed(clients, bob.id, 2)
    resp = client.get("/events/v1?limit=2", headers=alice.headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert [e["seq"] for e in body["items"]] == [1, 2] and body["next_cursor"] == "2"
    assert all(e["owner"] == alice.id for e in body["items"])
    rest = client.get(f"/events/v1?after={body['next_cursor']}&limit=10", headers=alice.headers).get_json()
    assert [e["seq"] for e in rest["items"]] == [3, 4, 5] and rest["next_cursor"] is None
    files = client.get("/events/v1?type=files.node", headers=alice.headers).get_json()
    assert [e["type"] for e in files["items"]] == ["files.node.created"] * 2
    assert files["items"][0]["data"] == {"i": 0}
    theirs = client.get("/events/v1", headers=bob.headers).get_json()["items"]
    assert {e["subject"] for e in theirs} == {f"{bob.id}-0", f"{bob.id}-1"}


def test_bad_parameters_are_400_and_anonymous_is_401(client, make_user):
    user = make_user()
    for query in ("after=x", "after=-1", "limit=0", "limit=501", "type=Files..node", "type=a.b.c.d"):
        resp = client.get(f"/events/v1?{query}", headers=user.headers)
        assert resp.status_code == 400, query
        assert resp.get_json()["error"]["code"] == "invalid_parameter"
    assert client.get("/events/v1").status_code == 401
