"""Actions and executions (CONTRACT §8): sync/async calls, params, answers classified, retries, dead letters,
grants between apps, core actions — against an app served over real HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from tests.fixtures.apps import make_archive, unique_name, wait_for


def manifest(name: str, url: str, **extra) -> dict:
    doc = {"name": name, "version": "1.0.0", "title": name, "namespace": name.replace("-", "")[:30],
           "runtime": {"url": url},
           "settings": {"type": "object", "properties": {"greeting": {"type": "string", "default": "hi"}}},
           "actions": {
               "echo": {"path": "/echo", "timeout_s": 5, "concurrency": 4, "public": True,
                        "params": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}},
               "flaky": {"path": "/flaky", "timeout_s": 1, "concurrency": 2},
               "reject": {"path": "/reject", "timeout_s": 5},
           }}
    doc.update(extra)
    return doc


@pytest.fixture
def admin(make_user):
    return make_user(name="Admin", admin=True)


@pytest.fixture
def install(client, admin, runner):
    def go(doc: dict) -> str:
        resp = client.post("/apps/v1/apps", data=make_archive(doc),
                           headers={**admin.headers, "Content-Type": "application/gzip"})
        assert resp.status_code == 201, resp.json
        assert client.post(f"/apps/v1/apps/{doc['name']}/approve", json={}, headers=admin.headers).status_code == 202
        runner.tick()
        assert client.get(f"/apps/v1/apps/{doc['name']}", headers=admin.headers).json["state"] == "active"
        return doc["name"]

    return go


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_sync_call_is_done_with_the_contract_body(client, admin, make_user, app_server, install, settings):
    name = install(manifest(name=unique_name("echo"), url=app_server.url))
    app_server.behaviours["/echo"] = lambda body, headers: (200, {"said": body["params"]["text"]})
    user = make_user(email="ann@example.test", name="Ann")
    resp = client.post(f"/apps/v1/actions/{name}/echo", json={"text": "hello"}, headers=user.headers)
    assert resp.status_code == 200, resp.json
    execution = resp.json["execution"]
    assert execution["state"] == "done" and execution["result"] == {"said": "hello"}
    assert execution["attempts"] == 1 and execution["app"] == name and execution["action"] == "echo"
    call = app_server.calls_to("/echo")[0]
    assert call["body"] == {"execution_id": execution["id"], "action": "echo", "params": {"text": "hello"},
                            "user": {"id": user.id, "name": "Ann", "email": "ann@example.test"},
                            "settings": {"greeting": "hi", "enabled": True}, "api_url": settings.public_url}
    assert call["headers"]["Idempotency-Key"] == execution["id"]
    claims = claims_of(call["headers"]["Authorization"].removeprefix("Bearer "))
    assert claims["azp"] == name and claims["sub"] == user.id and claims["execution_id"] == execution["id"]
    assert claims["client_id"] == f"app:{name}" and "admin" not in claims["scope"]
    got = client.get(f"/apps/v1/executions/{execution['id']}", headers=user.headers)
    assert got.json["state"] == "done"
    assert client.get(f"/apps/v1/executions/{execution['id']}", headers=admin.headers).status_code == 404


def test_bad_params_and_unknown_actions(client, admin, app_server, install):
    name = install(manifest(name=unique_name("echo"), url=app_server.url))
    resp = client.post(f"/apps/v1/actions/{name}/echo", json={"text": 5}, headers=admin.headers)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_params"
    assert client.post(f"/apps/v1/actions/{name}/nope", json={}, headers=admin.headers).status_code == 404
    assert client.post("/apps/v1/actions/no-such-app/echo", json={}, headers=admin.headers).status_code == 404
    assert app_server.calls == []


def test_async_and_idempotency_key(client, admin, app_server, install):
    name = install(manifest(name=unique_name("echo"), url=app_server.url))
    headers = {**admin.headers, "Prefer": "respond-async", "Idempotency-Key": "k-1"}
    first = client.post(f"/apps/v1/actions/{name}/echo", json={"text": "a"}, headers=headers)
    assert first.status_code == 202 and first.json["execution"]["state"] in ("new", "in_progress", "done")
    execution_id = first.json["execution"]["id"]
    assert wait_for(lambda: client.get(f"/apps/v1/executions/{execution_id}", headers=admin.headers)
                    .json["state"] == "done")
    again = client.post(f"/apps/v1/actions/{name}/echo", json={"text": "a"}, headers=headers)
    assert again.json["execution"]["id"] == execution_id
    assert len(app_server.calls_to("/echo")) == 1
    clash = client.post(f"/apps/v1/actions/{name}/echo", json={"text": "b"}, headers=headers)
    assert clash.status_code == 409


def test_4xx_is_dead_at_once_and_retry_makes_it_new(client, admin, app_server, install):
    name = install(manifest(name=unique_name("echo"), url=app_server.url))
    app_server.behaviours["/reject"] = lambda body, headers: (422, {"error": "no"})
    resp = client.post(f"/apps/v1/actions/{name}/reject", json={}, headers=admin.headers)
    execution = resp.json["execution"]
    assert resp.status_code == 200 and execution["state"] == "dead" and execution["attempts"] == 1
    assert "422" in execution["error"]
    dead = client.get(f"/apps/v1/executions?state=dead&app={name}", headers=admin.headers).json["items"]
    assert [d["id"] for d in dead] == [execution["id"]]
    app_server.behaviours["/reject"] = lambda body, headers: (200, {"ok": 1})
    retried = client.post(f"/apps/v1/executions/{execution['id']}/retry", headers=admin.headers)
    assert retried.status_code == 202 and retried.json["execution"]["state"] == "new"
    assert wait_for(lambda: client.get(f"/apps/v1/executions/{execution['id']}", headers=admin.headers)
                    .json["state"] == "done")
    again = client.post(f"/apps/v1/executions/{execution['id']}/retry", headers=admin.headers)
    assert again.status_code == 409


@pytest.mark.parametrize("behaviour", [lambda b, h: (503, {"busy": 1}), lambda b, h: (429, "slow down"),
                                       lambda b, h: (200, b"<html>not json"), "hang", "drop"],
                         ids=["503", "429", "garbage", "timeout", "dropped"])
def test_retryable_answers_fail_then_go_dead(client, admin, app_server, install, clients, processor, behaviour):
    from functions.apps import executions as ex

    name = install(manifest(name=unique_name("flaky"), url=app_server.url))
    app_server.behaviours["/flaky"] = behaviour
    app_server.hang_seconds = 3
    doc = ex.new_execution(owner=admin.id, app=name, action="flaky", params={},
                           retry={"attempts": 3, "backoff_s": [0.2, 0.4]})
    clients.db.executions.insert_one(doc)
    processor.pool.submit(doc["_id"])
    final = wait_for(lambda: (d := clients.db.executions.find_one({"_id": doc["_id"]}))["state"] == "dead" and d,
                     timeout=30)
    assert final and final["attempts"] == 3 and final["error"]
    assert len(app_server.calls_to("/flaky")) == 3
    assert {c["headers"]["Idempotency-Key"] for c in app_server.calls_to("/flaky")} == {doc["_id"]}


def test_list_is_newest_first_and_paged(client, admin, app_server, install):
    name = install(manifest(name=unique_name("echo"), url=app_server.url))
    ids = [client.post(f"/apps/v1/actions/{name}/echo", json={"text": str(i)}, headers=admin.headers)
           .json["execution"]["id"] for i in range(3)]
    page = client.get("/apps/v1/executions?limit=2", headers=admin.headers).json
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = client.get(f"/apps/v1/executions?limit=2&cursor={page['next_cursor']}", headers=admin.headers).json
    assert [i["id"] for i in rest["items"]] == [ids[0]] and rest["next_cursor"] is None


def test_app_to_app_calls_only_when_granted(client, admin, app_server, install):
    callee = install(manifest(name=unique_name("callee"), url=app_server.url))
    granted = install(manifest(name=unique_name("caller"), url=app_server.url,
                               uses={"actions": [f"{callee}.echo", "files.ensure-folder"]}))
    stranger = install(manifest(name=unique_name("stranger"), url=app_server.url))
    tokens = {}
    for app in (granted, stranger):
        resp = client.post(f"/apps/v1/actions/{app}/reject", json={}, headers=admin.headers)
        assert resp.status_code == 200
        tokens[app] = app_server.calls[-1]["headers"]["Authorization"]
    ok = client.post(f"/apps/v1/actions/{callee}/echo", json={"text": "from caller"},
                     headers={"Authorization": tokens[granted]})
    assert ok.status_code == 200 and ok.json["execution"]["state"] == "done"
    refused = client.post(f"/apps/v1/actions/{callee}/echo", json={"text": "x"},
                          headers={"Authorization": tokens[stranger]})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "not_granted"
    assert client.post("/apps/v1/actions/files/ensure-folder", json={"path": "/A"},
                       headers={"Authorization": tokens[stranger]}).json["error"]["code"] == "not_granted"
    folder = client.post("/apps/v1/actions/files/ensure-folder", json={"path": "/Camera/2024"},
                         headers={"Authorization": tokens[granted]})
    assert folder.status_code == 200 and folder.json["execution"]["result"]["name"] == "2024"
    # an app token reaches no lifecycle call
    assert client.post("/apps/v1/apps", json={"catalog": "x"}, headers={"Authorization": tokens[granted]}
                       ).status_code == 403


def test_core_actions_for_a_user(client, admin):
    made = client.post("/apps/v1/actions/files/ensure-folder", json={"path": "/Photos/Trips"}, headers=admin.headers)
    assert made.status_code == 200
    again = client.post("/apps/v1/actions/files/ensure-folder", json={"path": "/Photos/Trips"}, headers=admin.headers)
    assert again.json["execution"]["result"]["id"] == made.json["execution"]["result"]["id"]
    bad = client.post("/apps/v1/actions/files/ensure-folder", json={"path": "relative"}, headers=admin.headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_params"
    missing = client.post("/apps/v1/actions/files/read", json={"file_id": "nope"}, headers=admin.headers)
    assert missing.status_code == 404


def test_poison_app_beside_a_healthy_one(client, admin, app_server, live_server_factory, install, clients,
                                         processor):
    """A hanging, crashing, garbage-answering app only hurts its own executions."""
    from functions.apps import executions as ex
    from tests.fixtures.apps import ScriptedApp

    poison_server = ScriptedApp(hang_seconds=2)
    poison_server.url = live_server_factory(poison_server).url
    poison_manifest = manifest(name=unique_name("poison"), url=poison_server.url)
    for spec in poison_manifest["actions"].values():
        spec.update(timeout_s=1, concurrency=3)
    poison = install(poison_manifest)
    healthy = install(manifest(name=unique_name("healthy"), url=app_server.url))
    poison_server.behaviours["/flaky"] = "hang"
    poison_server.behaviours["/echo"] = lambda b, h: (200, b"garbage")
    poison_server.behaviours["/reject"] = "drop"
    bad, good = [], []
    for i in range(6):
        for action in ("flaky", "echo", "reject"):
            doc = ex.new_execution(owner=admin.id, app=poison, action=action, params={"text": "x"},
                                   retry={"attempts": 2, "backoff_s": [0.2]})
            clients.db.executions.insert_one(doc)
            processor.pool.submit(doc["_id"])
            bad.append(doc["_id"])
        doc = ex.new_execution(owner=admin.id, app=healthy, action="echo", params={"text": str(i)})
        clients.db.executions.insert_one(doc)
        processor.pool.submit(doc["_id"])
        good.append(doc["_id"])
    assert wait_for(lambda: clients.db.executions.count_documents({"_id": {"$in": good}, "state": "done"}) == 6,
                    timeout=10)
    assert wait_for(lambda: clients.db.executions.count_documents({"_id": {"$in": bad}, "state": "dead"}) == 18,
                    timeout=60)
    for doc in clients.db.executions.find({"_id": {"$in": bad}}):
        assert doc["attempts"] == 2 and doc["error"]
