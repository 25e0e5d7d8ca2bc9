"""A phone's chunk of plain renames, moves and deletes takes the bulk path (mobile_api/bulk.py), which writes
through the files function (files.write_many): the event log and the outbox see it exactly as they see the
op-by-op path, so search and apps never miss a change made offline."""

from __future__ import annotations

from runtime import events


def _log(world, after: int = 0) -> list[tuple[str, str, str]]:
    items, _ = events.list_events(world.db, world.user.id, after=after, type_prefix="files.node", limit=500)
    return [(e["type"].rsplit(".", 1)[1], e["subject"], e["data"]["path"]) for e in items]


def test_a_bulk_chunk_appends_files_events_with_paths_and_outbox_events(sync_world):
    w = sync_world
    pc, phone = w.device("Office PC"), w.device("Pixel 8")
    docs, other = w.folder(pc, "Docs"), w.folder(pc, "Other")
    a, b, c = (w.put_file(pc, data, parent_id=docs["id"], name=name)["node"]
               for data, name in ((b"a", "a.txt"), (b"b", "b.txt"), (b"c", "c.txt")))
    before = events.current_seq(w.db, w.user.id)
    outbox_before = {e["_id"] for e in w.events("node.changed")}

    results = w.apply(phone, {"type": "rename", "node_id": a["id"], "name": "a2.txt", "base_rev": a["rev"]},
                      {"type": "move", "node_id": b["id"], "parent_id": other["id"], "base_rev": b["rev"]},
                      {"type": "delete", "node_id": c["id"], "base_rev": c["rev"]})

    assert [r["status"] for r in results] == ["applied"] * 3
    assert sorted(_log(w, before)) == sorted([("updated", a["id"], "/Docs/a2.txt"),
                                              ("updated", b["id"], "/Other/b.txt"),
                                              ("trashed", c["id"], "/Docs/c.txt")])
    fresh = [e for e in w.events("node.changed") if e["_id"] not in outbox_before]
    assert sorted(e["payload"]["node_id"] for e in fresh) == sorted([a["id"], b["id"], c["id"]])
    assert {e["payload"]["device_id"] for e in fresh} == {phone}  # push does not tickle the phone that did it
    revs = sorted(r["node"]["rev"] for r in results)
    assert revs == sorted([a["rev"] + 1, b["rev"] + 1, c["rev"] + 1])
