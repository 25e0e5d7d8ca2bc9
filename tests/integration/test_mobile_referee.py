"""CONTRACT §5 table rows on the real database, each with two devices: the PC changes first, the phone's
offline op arrives late with the base_rev it saw."""

from datetime import UTC, datetime


def setup(world):
    pc, phone = world.device("Office PC", kind="phone"), world.device("Pixel 8")
    docs = world.folder(pc, "Docs")
    return pc, phone, docs


def test_stale_rename_of_a_moved_node_applies_cleanly(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    other = w.folder(pc, "Other")
    seen = docs["rev"]
    moved = w.one(pc, {"type": "move", "node_id": docs["id"], "parent_id": other["id"], "base_rev": seen})
    assert moved["status"] == "applied"
    result = w.one(phone, {"type": "rename", "node_id": docs["id"], "name": "Papers", "base_rev": seen})
    assert result["status"] == "applied" and "conflict" not in result
    assert (result["node"]["name"], result["node"]["parent_id"]) == ("Papers", other["id"])
    assert w.conflicts() == []


def test_delete_of_a_renamed_node_keeps_it(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    w.one(pc, {"type": "rename", "node_id": docs["id"], "name": "Docs 2026", "base_rev": docs["rev"]})
    result = w.one(phone, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    assert result["status"] == "conflict"
    assert result["conflict"]["type"] == "delete_modified" and result["conflict"]["resolution"] == "kept_server"
    assert result["node"]["trashed_at"] is None and result["node"]["name"] == "Docs 2026"
    stored = w.conflicts()
    assert [(c["type"], c["device_id"], c["node_id"]) for c in stored] == [("delete_modified", phone, docs["id"])]
    assert [e["payload"]["conflict_id"] for e in w.events("conflict.created")] == [stored[0]["_id"]]


def test_delete_of_an_unchanged_node_trashes_it(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    result = w.one(phone, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    assert result["status"] == "applied" and result["node"]["trashed_at"] is not None


def test_rename_of_a_trashed_node_restores_it(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    w.one(pc, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    result = w.one(phone, {"type": "rename", "node_id": docs["id"], "name": "Kept", "base_rev": docs["rev"]})
    assert result["status"] == "conflict"
    assert result["conflict"] == {**result["conflict"], "type": "modify_deleted", "resolution": "restored"}
    assert result["node"]["trashed_at"] is None and result["node"]["name"] == "Kept"


def test_move_inside_a_trashed_folder_restores_the_folder_chain(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    inner = w.folder(pc, "Inner", docs["id"])
    leaf = w.folder(pc, "Leaf", inner["id"])
    target = w.folder(pc, "Target")
    w.one(pc, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    result = w.one(phone, {"type": "rename", "node_id": leaf["id"], "name": "Leaf2", "base_rev": leaf["rev"]})
    assert result["conflict"]["type"] == "modify_deleted"
    live = w.live_tree()
    assert {docs["id"], inner["id"], leaf["id"]} <= set(live)
    assert live[leaf["id"]]["name"] == "Leaf2"
    # and a move into a folder that was deleted brings that folder back
    w.one(pc, {"type": "delete", "node_id": target["id"], "base_rev": target["rev"]})
    leaf_now = w.node(leaf["id"])
    moved = w.one(phone, {"type": "move", "node_id": leaf["id"], "parent_id": target["id"],
                          "base_rev": leaf_now["rev"]})
    assert moved["status"] == "conflict" and moved["conflict"]["type"] == "modify_deleted"
    assert target["id"] in w.live_tree() and w.node(leaf["id"])["parent_id"] == target["id"]


def test_restored_node_whose_name_was_taken_gets_a_conflicted_copy_name(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    w.one(pc, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    w.folder(pc, "Docs")
    inner_seen = docs["rev"]
    result = w.one(phone, {"type": "move", "node_id": docs["id"], "parent_id": w.root["_id"], "base_rev": inner_seen})
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert result["status"] == "conflict"
    assert result["node"]["name"] == f"Docs (conflicted copy from Pixel 8 {today})"
    names = sorted(n["name"] for n in w.live_tree().values() if n.get("parent_id") == w.root["_id"])
    assert names == ["Docs", f"Docs (conflicted copy from Pixel 8 {today})"]


def test_rename_where_name_changed_too_keeps_the_server_value(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    w.one(pc, {"type": "rename", "node_id": docs["id"], "name": "PC name", "base_rev": docs["rev"]})
    result = w.one(phone, {"type": "rename", "node_id": docs["id"], "name": "Phone name", "base_rev": docs["rev"]})
    assert result["status"] == "conflict"
    assert (result["conflict"]["type"], result["conflict"]["resolution"]) == ("modify_modified", "kept_server")
    assert w.node(docs["id"])["name"] == "PC name"


def test_move_where_parent_changed_too_keeps_the_server_value(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    a, b = w.folder(pc, "A"), w.folder(pc, "B")
    w.one(pc, {"type": "move", "node_id": docs["id"], "parent_id": a["id"], "base_rev": docs["rev"]})
    result = w.one(phone, {"type": "move", "node_id": docs["id"], "parent_id": b["id"], "base_rev": docs["rev"]})
    assert result["conflict"]["type"] == "modify_modified" and w.node(docs["id"])["parent_id"] == a["id"]


def test_create_folder_with_taken_name_merges(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    result = w.one(phone, {"type": "create_folder", "parent_id": w.root["_id"], "name": "DOCS"})
    assert result["status"] == "conflict"
    assert (result["conflict"]["type"], result["conflict"]["resolution"]) == ("name_taken", "merged")
    assert result["node"]["id"] == docs["id"]
    assert len([n for n in w.live_tree().values() if n.get("parent_id") == w.root["_id"]]) == 1


def test_move_into_own_subtree_is_rejected(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    child = w.folder(pc, "Child", docs["id"])
    result = w.one(phone, {"type": "move", "node_id": docs["id"], "parent_id": child["id"], "base_rev": docs["rev"]})
    assert result["status"] == "rejected" and result["conflict"]["type"] == "cycle"
    assert w.node(docs["id"])["parent_id"] == w.root["_id"]
    assert [c["type"] for c in w.conflicts()] == ["cycle"]


def test_rename_onto_a_taken_name_is_rejected_and_changes_nothing(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    w.folder(pc, "Photos")
    seq_before = w.db.users.find_one({"_id": w.user.id})["seq"]
    result = w.one(phone, {"type": "rename", "node_id": docs["id"], "name": "photos", "base_rev": docs["rev"]})
    assert result["status"] == "rejected" and result["error"]["code"] == "name_taken"
    assert w.node(docs["id"])["name"] == "Docs"
    assert w.db.users.find_one({"_id": w.user.id})["seq"] == seq_before


def test_repeated_op_id_returns_the_first_result_and_changes_nothing(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    op = {"op_id": "same", "type": "rename", "node_id": docs["id"], "name": "Once", "base_rev": docs["rev"]}
    first = w.one(phone, dict(op))
    seq = w.db.users.find_one({"_id": w.user.id})["seq"]
    w.one(pc, {"type": "rename", "node_id": docs["id"], "name": "Later", "base_rev": first["node"]["rev"]})
    again = w.one(phone, dict(op))
    assert again == first
    assert w.node(docs["id"])["name"] == "Later"
    assert w.db.users.find_one({"_id": w.user.id})["seq"] == seq + 1


def test_other_users_node_is_rejected_not_found_and_the_batch_goes_on(sync_world, make_user, clients):
    w = sync_world
    pc, phone, docs = setup(w)
    stranger = make_user()
    from functions.files import service as files

    their_root = files.get_root(clients.db, stranger.id)
    results = w.apply(phone,
                      {"type": "rename", "node_id": their_root["_id"], "name": "x", "base_rev": 1},
                      {"type": "create_folder", "parent_id": their_root["_id"], "name": "x"},
                      {"type": "commit_upload", "upload_id": "f" * 24},
                      {"type": "rename", "node_id": docs["id"], "name": "Mine", "base_rev": docs["rev"]})
    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected", "applied"]
    assert [r["error"]["code"] for r in results[:3]] == ["not_found"] * 3
    assert clients.db.nodes.count_documents({"owner": stranger.id}) == 1


def test_malformed_ops_are_rejected_one_by_one(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    results = w.apply(phone, {"type": "explode"}, {"type": "rename", "node_id": docs["id"], "base_rev": 1},
                      {"type": "rename", "node_id": docs["id"], "name": "a/b", "base_rev": docs["rev"]},
                      {"type": "delete", "node_id": docs["id"], "base_rev": -1},
                      {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"] + 5})
    assert [r["status"] for r in results] == ["rejected"] * 5
    assert [r["error"]["code"] for r in results] == ["invalid_op", "invalid_op", "invalid_name", "invalid_op",
                                                    "invalid_base_rev"]
    assert w.node(docs["id"])["name"] == "Docs" and w.node(docs["id"])["trashed_at"] is None


# --- rows with content: uploads committed through the ops referee -----------------------------------------------

def test_stale_content_edit_of_a_renamed_file_applies(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    f = w.put_file(pc, b"v1", parent_id=docs["id"], name="notes.txt")["node"]
    w.one(pc, {"type": "rename", "node_id": f["id"], "name": "notes-2026.txt", "base_rev": f["rev"]})
    result = w.put_file(phone, b"v2 from phone", node_id=f["id"], base_rev=f["rev"])
    assert result["status"] == "applied" and "conflict" not in result
    assert result["node"]["name"] == "notes-2026.txt" and w.content(f["id"]) == b"v2 from phone"


def test_edit_edit_keeps_both_as_a_conflicted_copy(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    f = w.put_file(pc, b"original", parent_id=docs["id"], name="report.docx")["node"]
    w.put_file(pc, b"pc edit", node_id=f["id"], base_rev=f["rev"])
    result = w.put_file(phone, b"phone edit", node_id=f["id"], base_rev=f["rev"])
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert result["status"] == "conflict"
    assert (result["conflict"]["type"], result["conflict"]["resolution"]) == ("edit_edit", "conflicted_copy")
    copy = result["node"]
    assert copy["id"] != f["id"] and copy["parent_id"] == docs["id"]
    assert copy["name"] == f"report (conflicted copy from Pixel 8 {today}).docx"
    assert w.content(f["id"]) == b"pc edit" and w.content(copy["id"]) == b"phone edit"
    assert [(c["type"], c["node_id"]) for c in w.conflicts()] == [("edit_edit", copy["id"])]
    assert w.events("conflict.created")[0]["payload"]["node_id"] == copy["id"]


def test_edit_of_a_trashed_file_restores_it_with_its_folder(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    f = w.put_file(pc, b"v1", parent_id=docs["id"], name="a.txt")["node"]
    w.one(pc, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    result = w.put_file(phone, b"v2", node_id=f["id"], base_rev=f["rev"])
    assert (result["status"], result["conflict"]["type"]) == ("conflict", "modify_deleted")
    live = w.live_tree()
    assert f["id"] in live and docs["id"] in live and w.content(f["id"]) == b"v2"


def test_new_file_with_a_taken_name_gets_a_conflicted_copy(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    w.put_file(pc, b"pc photo", parent_id=docs["id"], name="IMG_1.jpg")
    result = w.put_file(phone, b"phone photo", parent_id=docs["id"], name="img_1.jpg")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert (result["status"], result["conflict"]["type"], result["conflict"]["resolution"]) == \
        ("conflict", "name_taken", "conflicted_copy")
    assert result["node"]["name"] == f"img_1 (conflicted copy from Pixel 8 {today}).jpg"
    assert w.content(result["node"]["id"]) == b"phone photo"


def test_new_file_identical_to_the_taken_one_merges(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    first = w.put_file(pc, b"same bytes", parent_id=docs["id"], name="same.bin")["node"]
    result = w.put_file(phone, b"same bytes", parent_id=docs["id"], name="same.bin")
    assert (result["status"], result["conflict"]["resolution"], result["node"]["id"]) == \
        ("conflict", "merged", first["id"])
    assert len([n for n in w.live_tree().values() if n.get("parent_id") == docs["id"]]) == 1


def test_new_file_in_a_trashed_folder_restores_the_folder(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    upload_id = w.upload(b"x", parent_id=docs["id"], name="late.txt")
    w.one(pc, {"type": "delete", "node_id": docs["id"], "base_rev": docs["rev"]})
    result = w.one(phone, {"type": "commit_upload", "upload_id": upload_id})
    assert (result["status"], result["conflict"]["type"]) == ("conflict", "modify_deleted")
    assert {docs["id"], result["node"]["id"]} <= set(w.live_tree())


def test_commit_upload_op_is_idempotent(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    op = {"op_id": "up-1", "type": "commit_upload", "upload_id": w.upload(b"abc", parent_id=docs["id"], name="x")}
    first = w.one(phone, dict(op))
    assert w.one(phone, dict(op)) == first
    assert w.db.nodes.count_documents({"owner": w.user.id, "name": "x"}) == 1


def test_a_batch_with_a_clash_rolls_back_only_that_op(sync_world):
    w = sync_world
    pc, phone, docs = setup(w)
    a, b, c = w.folder(pc, "a"), w.folder(pc, "b"), w.folder(pc, "c")
    results = w.apply(phone,
                      {"op_id": "r1", "type": "rename", "node_id": a["id"], "name": "a2", "base_rev": a["rev"]},
                      {"op_id": "r2", "type": "rename", "node_id": b["id"], "name": "C", "base_rev": b["rev"]},
                      {"op_id": "r3", "type": "move", "node_id": c["id"], "parent_id": docs["id"],
                       "base_rev": c["rev"]},
                      {"op_id": "r1", "type": "rename", "node_id": a["id"], "name": "zzz", "base_rev": a["rev"]})
    assert [r["status"] for r in results] == ["applied", "rejected", "applied", "applied"]
    assert results[1]["error"]["code"] == "name_taken" and results[3] == results[0]
    assert (w.node(a["id"])["name"], w.node(b["id"])["name"], w.node(c["id"])["parent_id"]) == \
        ("a2", "b", docs["id"])
