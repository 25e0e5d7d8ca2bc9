"""`pcloud doctor` and the admin commands (issue 20), run as the operator runs them, against real services."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import devices
from runtime.ids import utcnow

ROOT = Path(__file__).resolve().parents[2]


def pcloud(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcloud_cli", *args], env={"PATH": "/usr/bin:/bin", **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def rows(output: str) -> dict[str, str]:
    """check name -> status from the doctor's table."""
    found = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 3 and cells[1] in ("ok", "warn", "FAIL"):
            found[cells[0]] = cells[1]
    return found


@pytest.fixture
def env(env, tmp_path):
    env["PCLOUD_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.fixture
def healthy(env, clients):
    clients.keys.current  # noqa: B018 - a first start generates the key store
    clients.keys.secret("blob-urls")
    return env


def test_doctor_passes_a_healthy_instance(healthy):
    got = pcloud(healthy, "doctor")
    assert got.returncode == 0, got.stdout + got.stderr
    checks = rows(got.stdout)
    assert {k: v for k, v in checks.items() if k != "sanity"} == {
        "settings": "ok", "data dir": "ok", "key store": "ok", "mongo": "ok", "redis": "ok", "amqp": "ok",
        "store": "ok", "search": "ok"}


def test_doctor_catches_a_wrong_mongo_url(healthy):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    got = pcloud({**healthy, "PCLOUD_MONGO_URL": f"mongodb://127.0.0.1:{port}/pcloud"}, "doctor", "--timeout", "1")
    assert got.returncode == 1
    assert rows(got.stdout)["mongo"] == "FAIL" and rows(got.stdout)["redis"] == "ok"
    assert "PCLOUD_MONGO_URL" in got.stdout and "problem(s): mongo" in got.stderr
    search = pcloud({**healthy, "PCLOUD_SEARCH_URL": f"http://127.0.0.1:{port}"}, "doctor", "--timeout", "1")
    assert search.returncode == 1 and rows(search.stdout)["search"] == "FAIL" and rows(search.stdout)["mongo"] == "ok"


def test_doctor_catches_a_missing_key_store(env, clients):
    got = pcloud(env, "doctor")
    assert got.returncode == 1
    assert rows(got.stdout)["key store"] == "FAIL" and "no key store" in got.stdout
    assert not (Path(env["PCLOUD_DATA_DIR"]) / "keys").exists()  # the doctor looked, it made nothing


def test_doctor_names_a_bad_setting(env):
    got = pcloud({**env, "PCLOUD_BIND": "nonsense"}, "doctor")
    assert got.returncode == 1 and "PCLOUD_BIND must be HOST:PORT" in got.stdout


def test_users_and_devices_commands(healthy, clients, make_user):
    admin = make_user(email="root@example.test", admin=True)
    member = make_user(email="bob@example.test")
    listed = pcloud(healthy, "users", "list")
    assert listed.returncode == 0 and "root@example.test" in listed.stdout and "bob@example.test" in listed.stdout
    assert pcloud(healthy, "users", "set-role", member.id, "admin").returncode == 0
    assert clients.db.users.find_one({"_id": member.id})["role"] == "admin"
    assert pcloud(healthy, "users", "disable", member.id).returncode == 0
    assert clients.db.users.find_one({"_id": member.id})["disabled"] is True
    # the last active admin cannot be demoted: the service's rule, reported as a refusal
    refused = pcloud(healthy, "users", "set-role", admin.id, "member")
    assert refused.returncode == 1 and "last admin" in refused.stderr
    missing = pcloud(healthy, "users", "disable", "no-such-user")
    assert missing.returncode == 1 and "no such user" in missing.stderr

    phone = devices.insert_phone(clients.db, member.id, "Bob's phone", "android", utcnow())
    shown = pcloud(healthy, "devices", "list", "--user", member.id)
    assert shown.returncode == 0 and phone in shown.stdout
    other = pcloud(healthy, "devices", "unpair", "--user", admin.id, phone)  # not admin's device
    assert other.returncode == 1
    assert pcloud(healthy, "devices", "unpair", "--user", member.id, phone).returncode == 0
    assert devices.get_owned(clients.db, member.id, phone) is None


def test_keys_rotate_keeps_the_previous_key_published(healthy, clients):
    before = clients.keys.public_jwks()["keys"][0]["kid"]
    got = pcloud(healthy, "keys", "rotate")
    assert got.returncode == 0 and before in got.stdout
    kids = [k["kid"] for k in clients.keys.public_jwks()["keys"]]
    assert len(kids) == 2 and kids[1] == before


def test_outbox_and_dead_letters(healthy, clients, settings):
    from runtime import events, jobs

    events.emit(clients.db, "push.notify", "u1", {"x": 1})
    got = pcloud(healthy, "outbox", "list")
    assert got.returncode == 0 and "pending: 1" in got.stdout and "push.notify" in got.stdout
    (claimed,) = events.claim_pending(clients.db, limit=1)  # a relay that took it and died
    assert "claimed: 1" in pcloud(healthy, "outbox", "list").stdout
    handed = pcloud(healthy, "outbox", "retry", "--claimed")
    assert handed.returncode == 0 and "1 event(s)" in handed.stdout
    assert clients.db.outbox.find_one({"_id": claimed["_id"]})["status"] == "pending"
    assert pcloud(healthy, "outbox", "retry").returncode == 2  # nothing named: a usage error

    queue = clients.queue("default")
    job = queue.enqueue("runtime.ids.no_such_function")
    worker = jobs.worker([queue], clients.redis)
    worker.work(burst=True)
    listed = pcloud(healthy, "dead-letters", "list")
    assert listed.returncode == 0 and job.id in listed.stdout
    retried = pcloud(healthy, "dead-letters", "retry", job.id)
    assert retried.returncode == 0 and "1 job(s) requeued" in retried.stdout
    assert job.id in queue.job_ids


def test_apps_install_approve_list_through_the_app_manager(healthy, clients, make_user, tmp_path):
    from tests.fixtures.apps import make_archive, unique_name

    clients.ensure_indexes()
    admin, member = make_user(admin=True), make_user()
    name = unique_name("cli")
    archive = tmp_path / "app.tar.gz"
    archive.write_bytes(make_archive({"name": name, "version": "1.0.0", "title": "CLI app", "description": "",
                                      "namespace": name.replace("-", "")[:30],
                                      "runtime": {"url": "http://127.0.0.1:9"}}))
    refused = pcloud(healthy, "apps", "install", str(archive), "--as", member.id)
    assert refused.returncode == 1 and "not an active admin" in refused.stderr
    got = pcloud(healthy, "apps", "install", str(archive), "--as", admin.id)
    assert got.returncode == 0 and f"{name} 1.0.0: pending_approval" in got.stdout, got.stderr
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not an archive")
    bad = pcloud(healthy, "apps", "install", str(broken), "--as", admin.id)
    assert bad.returncode == 1 and "invalid_app" in bad.stderr
    approved = pcloud(healthy, "apps", "approve", name, "--as", admin.id)
    assert approved.returncode == 0 and "installing" in approved.stdout, approved.stderr
    listed = pcloud(healthy, "apps", "list")
    assert listed.returncode == 0 and name in listed.stdout and "installing" in listed.stdout


def test_gc_run_runs_the_files_maintenance_jobs(healthy, clients):
    clients.ensure_indexes()
    got = pcloud(healthy, "gc", "run")
    assert got.returncode == 0, got.stderr
    assert [line.split(":")[0] for line in got.stdout.splitlines() if ":" in line] == [
        "expire_uploads", "purge_trash", "collect_blocks"]
