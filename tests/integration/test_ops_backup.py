"""`pcloud backup` / `pcloud restore` (issue 20): a round trip between two instances (two databases, two data
directories) on the real SecantusDB, and refusals that leave the target untouched.

The CLI runs as the operator runs it (`python -m pcloud_cli` in a subprocess with the instance's environment).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from werkzeug.test import Client

from runtime import devices
from runtime.clients import Clients, forget
from runtime.ids import utcnow
from runtime.mongo import database_name
from runtime.settings import load_settings
from tests.conftest import MONGO_BASE
from tests.fixtures.apps import make_archive, unique_name

ROOT = Path(__file__).resolve().parents[2]


def pcloud(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcloud_cli", *args], env={"PATH": "/usr/bin:/bin", **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(env, tmp_path):
    env["PCLOUD_DATA_DIR"] = str(tmp_path / "a")  # instance A's own key store, apps and search index
    env["PCLOUD_STORE_URL"] = f"file://{tmp_path / 'a-blobs'}"
    env["PCLOUD_SEARCH_API_KEY"] = "s3cr3t-key"  # a secret setting: never written to the archive
    return env


@pytest.fixture
def env_b(env, tmp_path):
    """A second, empty instance: its own database, data directory and block store."""
    return {**env, "PCLOUD_DATA_DIR": str(tmp_path / "b"), "PCLOUD_STORE_URL": f"file://{tmp_path / 'b-blobs'}",
            "PCLOUD_MONGO_URL": f"{MONGO_BASE}pcloud_b_{uuid.uuid4().hex[:12]}?directConnection=true"}


@pytest.fixture
def instance_b(env_b):
    """(settings, clients, werkzeug client factory) of instance B; the gateway is built after the restore."""
    settings = load_settings(env_b)
    clients = Clients(settings)
    yield settings, clients
    clients.mongo.drop_database(database_name(settings.mongo_url))
    clients.close()
    forget(settings)


def upload(client, user, parent_id: str, name: str, data: bytes, public_url: str) -> dict:
    blocks = [{"hash": hashlib.sha256(data).hexdigest(), "size": len(data)}]
    got = client.post("/files/v1/uploads", json={"parent_id": parent_id, "name": name, "size": len(data),
                                                 "blocks": blocks}, headers=user.headers)
    assert got.status_code == 201, got.json
    for item in got.json["missing"]:
        put = client.open(item["url"].removeprefix(public_url), method=item["method"], data=data,
                          headers=item["headers"])
        assert put.status_code in (200, 201, 204), put.data
    done = client.post(f"/files/v1/uploads/{got.json['upload_id']}/commit", headers=user.headers)
    assert done.status_code in (200, 201), done.json
    return done.json


@pytest.fixture
def populated(client, clients, settings, make_user, install_photos, gql_as):
    """Instance A with one of everything: a folder and a file, a phone, graph nodes, an app record."""
    clients.ensure_indexes()
    alice = make_user(email="alice@example.test")
    admin = make_user(name="Admin", admin=True)
    root = client.get("/files/v1/root", headers=alice.headers).json
    folder = client.post("/files/v1/folders", json={"parent_id": root["id"], "name": "Holiday"},
                         headers=alice.headers).json
    data = b"sunny day at the beach\n" * 100
    photo = upload(client, alice, folder["id"], "notes.txt", data, settings.public_url)
    phone = devices.insert_phone(clients.db, alice.id, "Alice's phone", "android", utcnow())
    install_photos()
    album = gql_as(alice).ok('mutation { add_photos_Album(input: {title: "Holiday at the seaside"}) { id } }')
    app_name = unique_name("bk")
    manifest = {"name": app_name, "version": "1.0.0", "title": "Backup test app", "description": "",
                "namespace": app_name.replace("-", "")[:30], "runtime": {"url": "http://127.0.0.1:9"}}
    resp = client.post("/apps/v1/apps", data=make_archive(manifest), headers={**admin.headers,
                                                                             "Content-Type": "application/gzip"})
    assert resp.status_code == 201, resp.json
    return {"alice": alice, "admin": admin, "folder": folder, "file": photo, "data": data, "phone": phone,
            "album": album["add_photos_Album"]["id"], "app": app_name}


def test_round_trip_brings_everything_back_and_old_tokens_still_verify(populated, env, env_b, instance_b,
                                                                     tmp_path):
    archive = tmp_path / "pcloud.tar.gz"
    made = pcloud(env, "backup", str(archive), "--with-blocks", "--quiet")
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_mode & 0o077 == 0  # it holds the private keys
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        names = tar.getnames()
    assert manifest["format"] == "pcloud-backup/1" and manifest["point_in_time"]["cluster_time"]
    assert {"users", "nodes", "devices", "apps", "events"} <= set(manifest["collections"])
    assert "data/keys/signing-keys.json" in names and any(n.startswith("data/secrets/") for n in names)
    assert manifest["settings"]["search_api_key"] == "(secret, not saved)"
    assert b"s3cr3t-key" not in gzip.decompress(archive.read_bytes())

    restored = pcloud(env_b, "restore", str(archive), "--quiet")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert "reindexed 2 files" in restored.stdout  # the folder and the file, from B's own tree

    from gateway.wsgi import create_gateway

    settings_b, clients_b = instance_b
    b = Client(create_gateway(settings_b))
    alice, admin = populated["alice"], populated["admin"]
    # the access tokens A issued before the backup verify against B's restored key store
    children = b.get(f"/files/v1/nodes/{populated['folder']['id']}/children", headers=alice.headers)
    assert children.status_code == 200, children.json
    assert [n["name"] for n in children.json["items"]] == ["notes.txt"]
    content = b.get(f"/files/v1/nodes/{populated['file']['id']}/content", headers=alice.headers,
                    follow_redirects=True)
    assert content.status_code == 200 and content.data == populated["data"]
    listed = b.get("/devices/v1/devices", headers=alice.headers).json["items"]
    assert [d["device_id"] for d in listed] == [populated["phone"]]
    got = b.post("/graph/v1/graphql", json={"query": f'{{ node(id: "{populated["album"]}") {{ id ... on '
                                                     'photos_Album { title } } }'}, headers=alice.headers)
    assert got.status_code == 200 and got.json["data"]["node"]["title"] == "Holiday at the seaside", got.json
    apps = b.get("/apps/v1/apps", headers=admin.headers).json["items"]
    assert [(a["name"], a["state"]) for a in apps] == [(populated["app"], "pending_approval")]
    hits = b.get("/search/v1?q=holiday", headers=alice.headers).json["items"]
    assert {h["id"] for h in hits} == {populated["folder"]["id"], populated["file"]["id"], populated["album"]}
    assert b.get("/search/v1?q=holiday", headers=admin.headers).json["items"] == []


def test_restore_refuses_a_non_empty_instance_unless_forced(populated, env, tmp_path):
    archive = tmp_path / "a.tar.gz"
    assert pcloud(env, "backup", str(archive), "--quiet").returncode == 0
    refused = pcloud(env, "restore", str(archive), "--quiet")
    assert refused.returncode == 1 and "not empty" in refused.stderr and "--force" in refused.stderr
    forced = pcloud(env, "restore", str(archive), "--force", "--quiet", "--no-reindex")
    assert forced.returncode == 0, forced.stderr


def _rewrite(archive: Path, target: Path, change) -> None:
    """Copy a tar.gz member by member, letting `change(name, data)` alter each member's bytes."""
    with tarfile.open(archive) as src, tarfile.open(target, "w:gz") as out:
        for info in src:
            data = change(info.name, src.extractfile(info).read())
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def _untouched(instance_b, env_b) -> None:
    settings_b, clients_b = instance_b
    assert [n for n in clients_b.db.list_collection_names() if not n.startswith("system.")] == []
    assert not (Path(env_b["PCLOUD_DATA_DIR"]) / "keys").exists()


def test_truncated_and_tampered_archives_are_refused_before_anything_is_written(populated, env, env_b, instance_b,
                                                                                tmp_path):
    archive = tmp_path / "good.tar.gz"
    assert pcloud(env, "backup", str(archive), "--quiet").returncode == 0
    raw = archive.read_bytes()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(raw[: len(raw) * 2 // 3])
    got = pcloud(env_b, "restore", str(truncated), "--quiet")
    assert got.returncode == 1 and "truncated or damaged" in got.stderr, got.stderr
    _untouched(instance_b, env_b)

    tampered = tmp_path / "tampered.tar.gz"
    _rewrite(archive, tampered, lambda name, data: data.replace(b"alice@example.test", b"mallory@evil.test")
             if name == "db/users.bson" else data)
    got = pcloud(env_b, "restore", str(tampered), "--quiet")
    assert got.returncode == 1 and "db/users.bson: checksum or size differs" in got.stderr, got.stderr
    _untouched(instance_b, env_b)

    dropped = tmp_path / "dropped.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(dropped, "w:gz") as out:
        for info in src:
            if info.name != "db/devices.bson":
                out.addfile(info, src.extractfile(info))
    got = pcloud(env_b, "restore", str(dropped), "--quiet")
    assert got.returncode == 1 and "db/devices.bson: missing" in got.stderr, got.stderr

    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as out:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 4
        out.addfile(info, io.BytesIO(b"root"))
    got = pcloud(env_b, "restore", str(foreign), "--quiet")
    assert got.returncode == 1 and "unexpected member" in got.stderr, got.stderr

    not_gzip = tmp_path / "plain.tar.gz"
    not_gzip.write_bytes(gzip.compress(b"hello"))
    got = pcloud(env_b, "restore", str(not_gzip), "--quiet")
    assert got.returncode == 1 and "nothing was restored" in got.stderr
    _untouched(instance_b, env_b)


def test_a_restore_that_fails_midway_leaves_the_instance_empty(populated, env, env_b, instance_b, tmp_path):
    """An archive consistent with its manifest whose data the database refuses (a duplicate _id in the last
    collection restored): the collections written before are dropped again, the data directory is untouched."""
    import bson

    archive = tmp_path / "good.tar.gz"
    assert pcloud(env, "backup", str(archive), "--quiet").returncode == 0
    with tarfile.open(archive) as src:
        members = {info.name: src.extractfile(info).read() for info in src}
    manifest = json.loads(members["manifest.json"])
    last = sorted(n for n, m in manifest["collections"].items() if m["count"])[-1]
    member = f"db/{last}.bson"
    first = next(bson.decode_file_iter(io.BytesIO(members[member])))
    members[member] += bson.encode(first)
    manifest["collections"][last]["count"] += 1
    manifest["members"][member] = {"sha256": hashlib.sha256(members[member]).hexdigest(),
                                   "size": len(members[member])}
    members["manifest.json"] = json.dumps(manifest).encode()
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    got = pcloud(env_b, "restore", str(forged), "--quiet")
    assert got.returncode == 1 and "restore failed" in got.stderr and "left empty" in got.stderr, got.stderr
    _untouched(instance_b, env_b)
