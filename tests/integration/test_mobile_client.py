"""The reference sync client keeps two local folders and the server in step over real HTTP, through offline
periods, conflicts and a sync interrupted after the server applied the ops."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clients.sync_client import ApiFailure, SyncApi, SyncClient
from clients.sync_client.hashing import BLOCK_SIZE, hash_file


def test_two_folders_stay_in_step(pair):
    laptop, phone, in_step, _, _ = pair
    (laptop.folder / "Docs").mkdir()
    (laptop.folder / "Docs" / "a.txt").write_bytes(b"hello")
    (laptop.folder / "Docs" / "Deep" / "er").mkdir(parents=True)
    (laptop.folder / "Docs" / "Deep" / "er" / "b.bin").write_bytes(os.urandom(1000))
    server = in_step()
    assert server["Docs/a.txt"] == b"hello" and "Docs/Deep/er/b.bin" in server
    # rename a folder, move a file, edit, delete — on the phone this time
    os.rename(phone.folder / "Docs", phone.folder / "Papers")
    os.rename(phone.folder / "Papers" / "a.txt", phone.folder / "a.txt")
    (phone.folder / "a.txt").write_bytes(b"hello again")
    (phone.folder / "Papers" / "Deep" / "er" / "b.bin").unlink()
    server = in_step()
    assert server == {"Papers": None, "Papers/Deep": None, "Papers/Deep/er": None, "a.txt": b"hello again"}


def test_large_file_goes_in_4_mib_blocks_and_unchanged_reupload_sends_nothing(pair, clients):
    laptop, phone, in_step, _, user = pair
    data = os.urandom(BLOCK_SIZE + 1234)
    (laptop.folder / "big.bin").write_bytes(data)
    in_step()
    assert (phone.folder / "big.bin").read_bytes() == data
    blocks, digest, size = hash_file(phone.folder / "big.bin")
    assert [b["size"] for b in blocks] == [BLOCK_SIZE, 1234]
    node = clients.db.nodes.find_one({"owner": user.id, "name": "big.bin"})
    assert node["content_hash"] == digest and node["size"] == size
    assert SyncApi(laptop.api.base, user.token).negotiate(
        {"parent_id": node["parent_id"], "name": "again.bin", "size": size, "blocks": blocks})["missing"] == []


def test_delete_on_phone_while_renamed_on_laptop_keeps_the_file(pair, clients):
    laptop, phone, in_step, _, _ = pair
    (laptop.folder / "plan.txt").write_bytes(b"v1")
    in_step()
    os.rename(laptop.folder / "plan.txt", laptop.folder / "plan-final.txt")  # both offline
    (phone.folder / "plan.txt").unlink()
    assert laptop.sync_once() and phone.sync_once()
    server = in_step()
    assert server == {"plan-final.txt": b"v1"}
    assert [c["type"] for c in clients.db.conflicts.find()] == ["delete_modified"]


def test_rename_on_phone_inside_a_folder_the_laptop_deleted_restores_it(pair, clients):
    laptop, phone, in_step, _, _ = pair
    (laptop.folder / "Trip").mkdir()
    (laptop.folder / "Trip" / "day1.jpg").write_bytes(b"jpg")
    (laptop.folder / "Trip" / "day2.jpg").write_bytes(b"jpg2")
    in_step()
    for f in (laptop.folder / "Trip").iterdir():
        f.unlink()
    (laptop.folder / "Trip").rmdir()
    os.rename(phone.folder / "Trip" / "day1.jpg", phone.folder / "Trip" / "Day 1.jpg")
    assert laptop.sync_once() and phone.sync_once()
    server = in_step()
    assert server["Trip/Day 1.jpg"] == b"jpg"
    assert [c["type"] for c in clients.db.conflicts.find()] == ["modify_deleted"]


def test_edit_on_both_sides_leaves_a_conflicted_copy_in_both_folders(pair):
    laptop, phone, in_step, _, _ = pair
    (laptop.folder / "notes.md").write_bytes(b"base")
    in_step()
    (laptop.folder / "notes.md").write_bytes(b"laptop edit")
    (phone.folder / "notes.md").write_bytes(b"phone edit!")
    assert laptop.sync_once() and phone.sync_once()
    server = in_step()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert server == {"notes.md": b"laptop edit", f"notes (conflicted copy from Pixel {today}).md": b"phone edit!"}


def test_sync_resumes_after_the_answer_was_lost(pair, gateway, clients):
    laptop, phone, in_step, client, user = pair

    class LosesAnswers(SyncApi):
        """The server applies the batch, then the connection drops before the client reads the answer."""

        def ops(self, device_id, ops):
            super().ops(device_id, ops)
            raise ApiFailure(0, "unreachable", "connection reset")

    (laptop.folder / "Inbox").mkdir()
    (laptop.folder / "Inbox" / "m.eml").write_bytes(b"mail")
    in_step()
    flaky = SyncClient(laptop.folder, LosesAnswers(gateway.url, user.token), device_name="Laptop")
    os.rename(laptop.folder / "Inbox", laptop.folder / "Archive")
    (laptop.folder / "Archive" / "n.eml").write_bytes(b"more mail")
    assert flaky.sync_once() is False  # the ops stay queued with their op_ids
    flaky.close()
    before = clients.db.users.find_one({"_id": user.id})["seq"]
    server = in_step()  # a fresh run resends the same op_ids: the server answers with its first results
    assert server == {"Archive": None, "Archive/m.eml": b"mail", "Archive/n.eml": b"more mail"}
    assert clients.db.users.find_one({"_id": user.id})["seq"] == before
    assert clients.db.conflicts.count_documents({}) == 0


def test_cli_once(gateway, make_user, tmp_path):
    user = make_user()
    folder = tmp_path / "cli"
    folder.mkdir()
    (folder / "x.txt").write_text("from the cli")
    env = {**os.environ, "PCLOUD_TOKEN": user.token}
    cmd = [sys.executable, "-m", "clients.sync_client", "--folder", str(folder), "--once", "--server", gateway.url,
           "--device-name", "CLI"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "in step" in done.stderr
    other = tmp_path / "other"
    done = subprocess.run([*cmd[:4], str(other), *cmd[5:]], env=env, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and (other / "x.txt").read_text() == "from the cli"


def test_queued_ops_do_not_build_on_changes_this_device_never_saw(pair):
    laptop, phone, in_step, _, _ = pair
    (laptop.folder / "f.txt").write_bytes(b"base")
    in_step()
    (laptop.folder / "f.txt").write_bytes(b"laptop edit")
    assert laptop.sync_once()
    os.rename(phone.folder / "f.txt", phone.folder / "g.txt")  # the phone, offline: rename, then edit
    (phone.folder / "g.txt").write_bytes(b"phone edit")
    server = in_step()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert server == {"g.txt": b"laptop edit", f"g (conflicted copy from Pixel {today}).txt": b"phone edit"}


def test_dev_token_for_the_walkthrough(gateway, env, clients, tmp_path):
    done = subprocess.run([sys.executable, "-m", "functions.pairing.devtoken", "--email", "New@Example.test"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    client = SyncClient(tmp_path / "walk", SyncApi(gateway.url, token), device_name="Laptop")
    try:
        (client.folder / "hello.txt").write_text("hi")
        assert client.sync_once()
    finally:
        client.close()
    user = clients.db.users.find_one({"email": "new@example.test"})
    assert clients.db.nodes.find_one({"owner": user["_id"], "name": "hello.txt"}) is not None


def test_made_and_removed_while_offline_never_reaches_the_server(pair, clients):
    laptop, phone, in_step, _, user = pair
    (laptop.folder / "Tmp").mkdir()
    laptop.scan()  # noticed and queued, but not sent (offline)
    (laptop.folder / "Tmp").rmdir()
    server = in_step()
    assert server == {} and clients.db.nodes.count_documents({"owner": user.id, "name": "Tmp"}) == 0


def test_an_edit_of_a_file_purged_elsewhere_comes_back_as_a_new_file(pair, clients):
    from functions.files import gc
    from runtime.ids import utcnow

    laptop, phone, in_step, _, user = pair
    (laptop.folder / "old.txt").write_bytes(b"v1")
    in_step()
    (laptop.folder / "old.txt").unlink()
    assert laptop.sync_once()
    assert gc.purge_trash(clients.db, clients.mongo, trash_days=0, now=utcnow() + timedelta(seconds=1)) == 1
    (phone.folder / "old.txt").write_bytes(b"v2, edited offline")
    server = in_step()
    assert server == {"old.txt": b"v2, edited offline"}
