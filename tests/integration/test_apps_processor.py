"""The event processor (CONTRACT §8): triggers on the event log, one execution per (trigger, event), event states,
backoff and dead letters, loop guard, leases, init, replay — with the real processor loops and an app over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime import events
from runtime.ids import utcnow
from tests.fixtures.apps import make_archive, unique_name, wait_for


def manifest(name: str, url: str, **extra) -> dict:
    doc = {"name": name, "version": "1.0.0", "title": name, "namespace": name.replace("-", "")[:30],
           "runtime": {"url": url},
           "settings": {"type": "object", "properties": {"folder": {"type": "string", "default": "/Inbox"}}},
           "actions": {"handle": {"path": "/handle", "timeout_s": 2, "concurrency": 4}},
           "uses": {"actions": ["files.ensure-folder"]},
           "triggers": [
               {"name": "on-image", "event": "graph.node.*", "where": {"node_type": "photos.Image"}, "run": "handle",
                "params": {"id": "{{ event.subject }}", "who": "{{ user.id }}", "folder": "{{ settings.folder }}"},
                "retry": {"attempts": 3, "backoff_s": [0.2, 0.3]}},
               {"name": "on-camera", "event": "files.node.created", "where": {"data.path": "/Camera/**"},
                "run": "handle", "params": {"path": "{{ event.data.path }}"}},
           ]}
    doc.update(extra)
    return doc


@pytest.fixture
def admin(make_user):
    return make_user(name="Admin", admin=True)


@pytest.fixture
def install(client, admin, runner):
    def go(doc: dict, replay: bool = False) -> str:
        resp = client.post("/apps/v1/apps", data=make_archive(doc),
                           headers={**admin.headers, "Content-Type": "application/gzip"})
        assert resp.status_code == 201, resp.json
        client.post(f"/apps/v1/apps/{doc['name']}/approve", json={"replay": replay}, headers=admin.headers)
        runner.tick()
        assert client.get(f"/apps/v1/apps/{doc['name']}", headers=admin.headers).json["state"] == "active"
        return doc["name"]

    return go


def image_event(db, owner: str, node_id: str = "n1", cause: dict | None = None, node_type: str = "photos.Image"):
    return events.append(db, owner=owner, type="graph.node.created", subject=node_id, node_type=node_type,
                         data={"node": {"id": node_id}, "changed": ["name"], "search": {}}, cause=cause)


def executions_of(db, event_id: str) -> list[dict]:
    return list(db.executions.find({"event_id": event_id}))


def test_trigger_fires_once_and_event_goes_done(clients, admin, make_user, app_server, install, processor):
    name = install(manifest(unique_name("proc"), app_server.url))
    user = make_user()
    event = image_event(clients.db, user.id)
    calls = app_server.wait_calls("/handle", 1)
    assert len(calls) == 1
    body = calls[0]["body"]
    assert body["params"] == {"id": "n1", "who": user.id, "folder": "/Inbox"}
    assert body["event"]["id"] == event["id"] and body["event"]["type"] == "graph.node.created"
    assert wait_for(lambda: events.get_event(clients.db, event["id"])["state"] == "done")
    [execution] = executions_of(clients.db, event["id"])
    assert execution["state"] == "done" and execution["trigger"] == "on-image" and execution["app"] == name
    # a second processor (or a redelivery) inserts nothing for the same (trigger, event)
    processor.handle([clients.db.events.find_one({"_id": event["id"]})])
    assert len(executions_of(clients.db, event["id"])) == 1


def test_matching_rules(clients, admin, make_user, app_server, install, processor, client):
    install(manifest(unique_name("proc"), app_server.url))
    user = make_user()
    other_type = image_event(clients.db, user.id, "n2", node_type="faces.Face")
    outside = events.append(clients.db, owner=user.id, type="files.node.created", subject="f1",
                            data={"node": {"id": "f1"}, "path": "/Documents/a.jpg"})
    inside = events.append(clients.db, owner=user.id, type="files.node.created", subject="f2",
                           data={"node": {"id": "f2"}, "path": "/Camera/2024/b.jpg"})
    assert app_server.wait_calls("/handle", 1)[0]["body"]["params"] == {"path": "/Camera/2024/b.jpg"}
    assert wait_for(lambda: all(events.get_event(clients.db, e["id"])["state"] == "done"
                                for e in (other_type, outside, inside)))
    assert executions_of(clients.db, other_type["id"]) == [] and executions_of(clients.db, outside["id"]) == []


def test_user_disabled_app_is_not_triggered(clients, client, make_user, app_server, install, processor):
    name = install(manifest(unique_name("proc"), app_server.url))
    user = make_user()
    assert client.put(f"/apps/v1/apps/{name}/settings", json={"enabled": False}, headers=user.headers
                      ).status_code == 200
    event = image_event(clients.db, user.id)
    assert wait_for(lambda: events.get_event(clients.db, event["id"])["state"] == "done")
    assert executions_of(clients.db, event["id"]) == []


def test_failures_back_off_then_dead_and_the_event_settles(clients, make_user, app_server, install, processor):
    install(manifest(unique_name("proc"), app_server.url))
    app_server.behaviours["/handle"] = lambda body, headers: (500, {"oops": True})
    user = make_user()
    event = image_event(clients.db, user.id)
    assert wait_for(lambda: events.get_event(clients.db, event["id"])["state"] == "in_progress", timeout=5)
    assert wait_for(lambda: events.get_event(clients.db, event["id"])["state"] == "done", timeout=30)
    [execution] = executions_of(clients.db, event["id"])
    assert execution["state"] == "dead" and execution["attempts"] == 3 and "500" in execution["error"]
    times = [c["at"] for c in app_server.calls_to("/handle")]
    assert len(times) == 3 and times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.3


def test_loop_guard(clients, make_user, app_server, install, processor):
    name = install(manifest(unique_name("proc"), app_server.url))
    user = make_user()
    own = image_event(clients.db, user.id, "n1", cause={"app": name, "execution_id": "e1", "depth": 1})
    deep = image_event(clients.db, user.id, "n2", cause={"app": "someone-else", "execution_id": "e2", "depth": 8})
    assert wait_for(lambda: all(events.get_event(clients.db, e["id"])["state"] == "done" for e in (own, deep)))
    assert executions_of(clients.db, own["id"]) == []
    [stopped] = executions_of(clients.db, deep["id"])
    assert stopped["state"] == "dead" and "deeper than 8" in stopped["error"]
    assert app_server.calls_to("/handle") == []


def test_lapsed_lease_runs_again_under_the_same_id(clients, make_user, app_server, install, processor):
    from functions.apps import executions as ex

    name = install(manifest(unique_name("proc"), app_server.url))
    user = make_user()
    doc = ex.new_execution(owner=user.id, app=name, action="handle", params={"x": 1})
    doc.update(state="in_progress", attempts=1, lease_holder="a-dead-processor",
               lease_until=utcnow() - timedelta(seconds=1))
    clients.db.executions.insert_one(doc)
    calls = app_server.wait_calls("/handle", 1)
    assert calls[0]["headers"]["Idempotency-Key"] == doc["_id"]
    assert wait_for(lambda: clients.db.executions.find_one({"_id": doc["_id"]})["state"] == "done")
    assert clients.db.executions.find_one({"_id": doc["_id"]})["attempts"] == 2


def test_init_runs_once_per_user_at_activation(clients, make_user, app_server, install, processor, client):
    first = make_user()
    name = install(manifest(unique_name("proc"), app_server.url,
                            init=[{"action": "files.ensure-folder", "params": {"path": "{{ settings.folder }}"}}]))
    assert wait_for(lambda: clients.db.executions.count_documents({"app": "files", "state": "done",
                                                                   "owner": first.id}) == 1)
    root = client.get("/files/v1/root", headers=first.headers).json
    children = client.get(f"/files/v1/nodes/{root['id']}/children", headers=first.headers).json["items"]
    assert [c["name"] for c in children] == ["Inbox"]
    later = make_user()  # signs up after activation: init at their first event
    image_event(clients.db, later.id)
    assert wait_for(lambda: clients.db.executions.count_documents({"app": "files", "owner": later.id,
                                                                   "state": "done"}) == 1)
    image_event(clients.db, later.id, "n9")
    app_server.wait_calls("/handle", 2)
    inits = list(clients.db.executions.find({"app": "files", "trigger_key": f"{name}/init-0"}))
    owners = [d["owner"] for d in inits]
    assert sorted(owners) == sorted(set(owners)) and {first.id, later.id} <= set(owners)  # once per user


def test_replay_per_user_with_progress_and_at_approval(clients, client, admin, make_user, app_server, install,
                                                       processor):
    user = make_user()
    past = [image_event(clients.db, user.id, f"old-{i}") for i in range(5)]
    image_event(clients.db, admin.id, "admins-own")
    name = install(manifest(unique_name("proc"), app_server.url), replay=True)
    # at approval: every user's matching past events (5 of the user, 1 of the admin)
    assert len(app_server.wait_calls("/handle", 6)) == 6
    resp = client.post(f"/apps/v1/apps/{name}/replay", json={}, headers=user.headers)
    assert resp.status_code == 202
    replay_id = resp.json["replay_id"]
    progress = wait_for(lambda: (p := client.get(f"/apps/v1/replays/{replay_id}", headers=user.headers).json)
                        ["state"] == "done" and p)
    assert progress == {"id": replay_id, "app": name, "state": "done", "total": 5, "done": 5}
    # one execution per (trigger, event): replaying again made no new ones
    assert clients.db.executions.count_documents({"event_id": {"$in": [e["id"] for e in past]}}) == 5
    assert client.get(f"/apps/v1/replays/{replay_id}", headers=admin.headers).status_code == 404
    assert wait_for(lambda: all(events.get_event(clients.db, e["id"])["state"] == "done" for e in past))
