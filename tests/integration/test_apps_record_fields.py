"""What the portal's apps page builds on: an app record's settings_schema and the approval replay's id."""

from __future__ import annotations

from tests.fixtures.apps import make_archive, unique_name


def test_record_carries_the_settings_schema_and_the_replay_started_at_approval(client, make_user, app_server,
                                                                               runner):
    admin = make_user(name="Admin", admin=True)
    name = unique_name("echo")
    archive = make_archive({
        "name": name, "version": "1.0.0", "title": "Echo", "namespace": name.replace("-", "")[:30],
        "runtime": {"url": app_server.url},
        "settings": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "default": 3}}},
        "actions": {"echo": {"path": "/actions/echo", "timeout_s": 5, "concurrency": 1}}})
    assert client.post("/apps/v1/apps", data=archive,
                       headers={**admin.headers, "Content-Type": "application/gzip"}).status_code == 201
    pending = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert pending["settings_schema"]["properties"] == {
        "limit": {"type": "integer", "minimum": 1, "default": 3}, "enabled": {"type": "boolean", "default": True}}
    assert "replay_id" not in pending
    assert client.post(f"/apps/v1/apps/{name}/approve", json={"replay": True},
                       headers=admin.headers).status_code == 202
    runner.tick()
    active = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert active["state"] == "active"
    progress = client.get(f"/apps/v1/replays/{active['replay_id']}", headers=admin.headers)
    assert progress.status_code == 200 and progress.json["app"] == name
    member = make_user(name="Member")
    assert client.get(f"/apps/v1/replays/{active['replay_id']}", headers=member.headers).status_code == 404
