"""App lifecycle through the gateway (CONTRACT §8): intake, approval, upgrade, reject, uninstall, settings, catalog."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.fixtures.apps import make_archive, unique_name


def manifest(name: str, url: str, version: str = "1.0.0", **extra) -> dict:
    doc = {"name": name, "version": version, "title": f"App {name}", "description": "a test app",
           "namespace": name.replace("-", "")[:30], "runtime": {"url": url},
           "settings": {"type": "object", "properties": {"folder": {"type": "string", "default": "/Inbox"},
                                                         "limit": {"type": "integer", "minimum": 1, "default": 3}}},
           "actions": {"echo": {"path": "/actions/echo", "timeout_s": 5, "concurrency": 2,
                                "params": {"type": "object", "required": ["text"],
                                           "properties": {"text": {"type": "string"}}}}}}
    doc.update(extra)
    return doc


def post_archive(client, user, data: bytes, kind: str = "gzip"):
    return client.post("/apps/v1/apps", data=data, headers={**user.headers, "Content-Type": f"application/{kind}"})


@pytest.fixture
def admin(make_user):
    return make_user(name="Admin", admin=True)


def test_submit_approve_activate(client, admin, app_server, runner, clients):
    name = unique_name("echo")
    resp = post_archive(client, admin, make_archive(manifest(name, app_server.url)))
    assert resp.status_code == 201, resp.json
    assert resp.json == {"name": name, "version": "1.0.0", "state": "pending_approval", "requests": {
        "actions": [], "types": {}, "triggers": [], "schema_types": [], "web": None}}
    assert client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json["state"] == "pending_approval"
    resp = client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers)
    assert resp.status_code == 202 and resp.json["state"] == "installing"
    runner.tick()
    got = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert got["state"] == "active" and got["granted"] == got["requests"]
    listed = client.get("/apps/v1/apps", headers=admin.headers).json["items"]
    assert [a["name"] for a in listed] == [name]
    # apps.app.installed is in the approver's log
    events = client.get("/events/v1?type=apps.app", headers=admin.headers).json["items"]
    assert [(e["type"], e["subject"]) for e in events] == [("apps.app.installed", name)]


def test_bad_archive_is_400_with_every_problem_and_nothing_kept(client, admin, clients, settings):
    name = unique_name("bad")
    bad = manifest(name, "ftp://nope", version="x", colour="red")
    resp = post_archive(client, admin, make_archive(bad, {"../evil.py": b"x"}))
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_app"
    problems = resp.json["error"]["details"]["problems"]
    assert any("'..'" in p for p in problems) and any("version" in p for p in problems)
    assert any("unknown key(s) colour" in p for p in problems) and any(p.startswith("runtime/url") for p in problems)
    assert clients.db.apps.count_documents({}) == 0
    assert not (settings.apps_dir / name).exists()
    assert post_archive(client, admin, b"not an archive").json["error"]["details"]["problems"] == [
        "archive is neither a .tar.gz nor a .zip"]
    no_manifest = io.BytesIO()
    with tarfile.open(fileobj=no_manifest, mode="w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    assert post_archive(client, admin, no_manifest.getvalue()).json["error"]["details"]["problems"] == [
        "pcloud-app.yaml is missing at the archive's root"]
    assert client.post("/apps/v1/apps", data=b"x", headers={**admin.headers, "Content-Type": "text/plain"}
                       ).status_code == 415


def test_zip_bomb_and_traversal_through_the_api(client, admin, clients, settings):
    name = unique_name("bomb")
    bomb = make_archive(manifest(name, "http://127.0.0.1:9"), {"zeros": b"\0" * (4 * settings.app_max_bytes + 10)},
                        kind="zip")
    assert len(bomb) < settings.app_max_bytes
    resp = post_archive(client, admin, bomb, kind="zip")
    assert resp.status_code == 400
    assert any("unpacks past the limit" in p for p in resp.json["error"]["details"]["problems"])
    assert clients.db.apps.count_documents({}) == 0 and not (settings.apps_dir / name).exists()


def test_member_may_not_install_approve_or_uninstall(client, admin, make_user, app_server, runner):
    member = make_user(name="Member")
    name = unique_name("echo")
    data = make_archive(manifest(name, app_server.url))
    resp = post_archive(client, member, data)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"
    assert post_archive(client, admin, data).status_code == 201
    for method, path in (("post", f"/apps/v1/apps/{name}/approve"), ("post", f"/apps/v1/apps/{name}/reject"),
                         ("delete", f"/apps/v1/apps/{name}")):
        resp = getattr(client, method)(path, json={}, headers=member.headers)
        assert resp.status_code == 403, (path, resp.json)
    assert client.get(f"/apps/v1/apps/{name}", headers=member.headers).json["state"] == "pending_approval"
    assert client.post("/apps/v1/apps", json={"catalog": "anything"}, headers=member.headers).status_code == 403


def test_reject_removes_everything(client, admin, app_server, clients, settings):
    name = unique_name("echo")
    assert post_archive(client, admin, make_archive(manifest(name, app_server.url))).status_code == 201
    assert (settings.apps_dir / name / "1.0.0" / "pcloud-app.yaml").exists()
    resp = client.post(f"/apps/v1/apps/{name}/reject", headers=admin.headers)
    assert resp.status_code == 200 and resp.json["state"] == "rejected"
    assert client.get(f"/apps/v1/apps/{name}", headers=admin.headers).status_code == 404
    assert not (settings.apps_dir / name / "1.0.0").exists()


def test_upgrade_is_additive_and_older_or_same_is_409(client, admin, app_server, runner):
    name = unique_name("echo")
    assert post_archive(client, admin, make_archive(manifest(name, app_server.url, "1.2.0"))).status_code == 201
    client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers)
    runner.tick()
    for version in ("1.2.0", "1.1.9"):
        resp = post_archive(client, admin, make_archive(manifest(name, app_server.url, version)))
        assert resp.status_code == 409 and resp.json["error"]["code"] == "app_exists"
    moved = manifest(name, app_server.url, "1.3.0", namespace="othername")
    resp = post_archive(client, admin, make_archive(moved))
    assert resp.status_code == 400 and "keeps the namespace" in str(resp.json["error"]["details"]["problems"])
    newer = manifest(name, app_server.url, "2.0.0")
    newer["actions"]["shout"] = {"path": "/actions/shout"}
    resp = post_archive(client, admin, make_archive(newer))
    assert resp.status_code == 201 and resp.json["state"] == "pending_approval"
    got = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert got["version"] == "1.2.0" and got["state"] == "active" and got["upgrade"]["version"] == "2.0.0"
    client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers)
    runner.tick()
    got = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert got["version"] == "2.0.0" and got["state"] == "active" and "upgrade" not in got


def test_failed_install_reports_why(client, admin, runner):
    name = unique_name("down")
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    assert post_archive(client, admin, make_archive(manifest(name, dead))).status_code == 201
    client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers)
    import functions.apps.runner as runner_module

    runner_module.START_WAIT_S, saved = 1.0, runner_module.START_WAIT_S
    try:
        runner.tick()
    finally:
        runner_module.START_WAIT_S = saved
    got = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert got["state"] == "failed" and "did not answer" in got["error"]


def test_settings_validated_with_defaults(client, admin, make_user, app_server, runner):
    name = unique_name("echo")
    post_archive(client, admin, make_archive(manifest(name, app_server.url)))
    client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers)
    runner.tick()
    user = make_user()
    url = f"/apps/v1/apps/{name}/settings"
    assert client.get(url, headers=user.headers).json == {"folder": "/Inbox", "limit": 3, "enabled": True}
    resp = client.put(url, json={"limit": 0, "enabled": "no"}, headers=user.headers)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_settings"
    assert len(resp.json["error"]["details"]["problems"]) == 2
    assert client.put(url, json={"limit": 7, "enabled": False}, headers=user.headers).json == {
        "folder": "/Inbox", "limit": 7, "enabled": False}
    assert client.get(url, headers=user.headers).json["limit"] == 7
    assert client.get(url, headers=admin.headers).json["limit"] == 3  # settings are per user


def test_uninstall_stops_it_at_once(client, admin, app_server, runner, clients):
    name = unique_name("echo")
    post_archive(client, admin, make_archive(manifest(name, app_server.url)))
    client.post(f"/apps/v1/apps/{name}/approve", json={}, headers=admin.headers)
    runner.tick()
    assert client.delete(f"/apps/v1/apps/{name}", headers=admin.headers).status_code == 204
    assert client.get(f"/apps/v1/apps/{name}", headers=admin.headers).status_code == 404
    resp = client.post(f"/apps/v1/actions/{name}/echo", json={"text": "x"}, headers=admin.headers)
    assert resp.status_code == 404
    events = client.get("/events/v1?type=apps.app", headers=admin.headers).json["items"]
    assert [e["type"] for e in events] == ["apps.app.installed", "apps.app.uninstalled"]


def test_catalog_packs_bundled_directories_through_the_same_intake(client, admin, tmp_path, app_server,
                                                                   gateway_app):
    from functions.apps.service import AppManager

    name = unique_name("bundled")
    folder = tmp_path / "catalog" / name
    folder.mkdir(parents=True)
    import yaml

    (folder / "pcloud-app.yaml").write_text(yaml.safe_dump(manifest(name, app_server.url)))
    broken = tmp_path / "catalog" / "broken-app"
    broken.mkdir()
    (broken / "pcloud-app.yaml").write_text("name: Broken\n")
    apps_fn = gateway_app.apps["apps"]
    with apps_fn.app_context():
        apps_fn.extensions["apps_manager"] = AppManager(apps_fn.extensions["pcloud"].db,
                                                        apps_fn.config["PCLOUD_SETTINGS"], tmp_path / "catalog")
    items = client.get("/apps/v1/catalog", headers=admin.headers).json["items"]
    assert {i["name"]: i["installed"] for i in items} == {name: None, "broken-app": None}
    resp = client.post("/apps/v1/apps", json={"catalog": name}, headers=admin.headers)
    assert resp.status_code == 201 and resp.json["name"] == name
    resp = client.post("/apps/v1/apps", json={"catalog": "broken-app"}, headers=admin.headers)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_app"
    assert client.post("/apps/v1/apps", json={"catalog": "nope"}, headers=admin.headers).status_code == 404
