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
