"""Three devices make random offline ops in random interleavings, then sync (hypothesis).

Driven in-process through the same service the ops endpoint runs (mobile_api.ops.apply_batch and
mobile_api.sync.changes) on the real database, so 500 examples fit in CI time. After everyone has synced:
every device's tree equals the server's, names are unique per folder, the tree has no cycles or orphans, no
content was lost without a conflict record or a trash entry, and a retried batch changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import unicodedata
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.files import service as files
from mobile_api import ops, sync
from runtime.ids import new_id, utcnow

NAMES = ["a", "A", "b", "x.txt", "X.TXT", "é"]
NAMES_NFD = [unicodedata.normalize("NFD", "é")]
ACTIONS = ["create_folder", "create_file", "rename", "move", "delete", "edit", "sync", "retry"]


def digest(content: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(content).digest()).hexdigest()


@dataclass
class Device:
    id: str
    name: str
    view: dict = field(default_factory=dict)  # the server's tree as this device read it (its mirror)
    local: dict | None = None  # the device's own tree while offline: the mirror plus its queued changes
    cursor: str | None = None
    queue: list = field(default_factory=list)  # (op, local facts)
    last_batch: list | None = None
    last_results: list | None = None
    counter: int = 0

    def live(self, tree: dict | None = None) -> dict:
        tree = self.view if tree is None else tree

        def ok(node_id, depth=0):
            n = tree.get(node_id)
            if n is None or n["trashed"] or depth > 100:
                return False
            return n["parent_id"] is None or ok(n["parent_id"], depth + 1)

        return {i: n for i, n in tree.items() if ok(i)}


class World:
    def __init__(self, clients, user_id: str):
        self.clients, self.db, self.owner = clients, clients.db, user_id
        self.root = files.get_root(self.db, user_id)["_id"]
        self.devices = []
        now = utcnow()
        docs = [{"_id": new_id(), "kind": "phone", "owner": user_id, "name": name, "online": False,
                 "last_seen": now, "paired_at": now, "created_at": now} for name in ("Laptop", "Pixel", "Tablet")]
        self.db.devices.insert_many(docs)
        self.devices = [Device(d["_id"], d["name"]) for d in docs]
        self.written: set[str] = set()       # every content hash a device committed
        self.superseded: set[str] = set()    # contents an applied, non-conflicting edit replaced knowingly
        self.ops_sent = 0
        self._sent_base: dict[str, int] = {}  # op_id of an upload commit -> the base_rev it was negotiated with

    # --- device actions (offline: only the device's own view changes) --------------------------------------
    def offline(self, device: Device, action: str, data) -> None:
        if device.local is None:
            device.local = {i: dict(n) for i, n in device.view.items()}
        local = device.local
        live = device.live(local)
        known = [i for i in live if not i.startswith("tmp-")]  # queued creates get ids only when sent
        folders = [i for i in known if live[i]["kind"] == "folder"]
        others = [i for i in known if i != self.root]
        files_ = [i for i in known if live[i]["kind"] == "file"]
        if action in ("create_folder", "create_file"):
            parent = data.draw(st.sampled_from(folders))
            name = self._free_local_name(device, parent, data)
            if name is None:
                return
            if action == "create_folder":
                device.queue.append(({"type": "create_folder", "parent_id": parent, "name": name}, {}))
            else:
                content = self._content(device)
                device.queue.append(({"type": "upload", "parent_id": parent, "name": name, "content": content}, {}))
            local[f"tmp-{new_id()}"] = {"parent_id": parent, "name": name, "kind": action[7:], "rev": 0,
                                        "content_hash": None, "trashed": False}
        elif action == "rename" and others:
            node = data.draw(st.sampled_from(others))
            name = self._free_local_name(device, live[node]["parent_id"], data)
            if name is None:
                return
            device.queue.append(({"type": "rename", "node_id": node, "name": name,
                                  "base_rev": device.view[node]["rev"]}, {}))
            local[node] = {**local[node], "name": name}
        elif action == "move" and others:
            node = data.draw(st.sampled_from(others))
            below = self._local_subtree(device, node)
            targets = [f for f in folders if f not in below and f != live[node]["parent_id"]]
            if not targets:
                return
            target = data.draw(st.sampled_from(targets))
            if any(n["name"].casefold() == live[node]["name"].casefold() for n in live.values()
                   if n["parent_id"] == target):
                return
            device.queue.append(({"type": "move", "node_id": node, "parent_id": target,
                                  "base_rev": device.view[node]["rev"]}, {}))
            local[node] = {**local[node], "parent_id": target}
        elif action == "delete" and others:
            node = data.draw(st.sampled_from(others))
            device.queue.append(({"type": "delete", "node_id": node, "base_rev": device.view[node]["rev"]}, {}))
            local[node] = {**local[node], "trashed": True}
        elif action == "edit" and files_:
            node = data.draw(st.sampled_from(files_))
            content = self._content(device)
            device.queue.append(({"type": "upload", "node_id": node, "content": content,
                                  "base_rev": device.view[node]["rev"]},
                                 {"replaces": live[node]["content_hash"]}))
            local[node] = {**local[node], "content_hash": digest(content)}

    def _content(self, device: Device) -> bytes:
        device.counter += 1
        return f"{device.name}-{device.counter}-{new_id()}".encode()

    def _free_local_name(self, device, parent, data) -> str | None:
        taken = {unicodedata.normalize("NFC", n["name"]).casefold() for n in device.live(device.local).values()
                 if n["parent_id"] == parent}
        free = [n for n in NAMES + NAMES_NFD if unicodedata.normalize("NFC", n).casefold() not in taken]
        return data.draw(st.sampled_from(free)) if free else None

    def _local_subtree(self, device, node) -> set:
        out, frontier = {node}, [node]
        while frontier:
            frontier = [i for i, n in device.local.items() if n["parent_id"] in frontier and i not in out]
            out.update(frontier)
        return out

    # --- sync: send the queue like the reference client (base_rev = the rev this device saw), then pull -------
    def sync(self, device: Device) -> None:
        queue, device.queue = device.queue, []
        revs = {}  # node -> base_rev advanced by this device's own applied op (nothing else changed in between)
        while queue:
            batch, touched = [], set()
            while queue and queue[0][0].get("node_id") not in touched:
                op, facts = queue.pop(0)
                if op.get("node_id"):
                    touched.add(op["node_id"])
                batch.append((self._wire(device, op, revs), op, facts))
            wire = [w for w, _, _ in batch]
            results = ops.apply_batch(self.db, self.clients.mongo, self.clients.store, self.owner, device.id,
                                      wire)["results"]
            self.ops_sent += len(wire)
            device.last_batch, device.last_results = wire, results
            for (w, op, facts), result in zip(batch, results, strict=True):
                if result.get("node"):
                    self._learn(device, result["node"])
                    if result["status"] == "applied" and op.get("node_id") and \
                            result["node"]["rev"] == w.get("base_rev", self._sent_base.get(w["op_id"], -9)) + 1:
                        revs[op["node_id"]] = result["node"]["rev"]
                if op["type"] == "upload" and result["status"] != "rejected":
                    self.written.add(digest(op["content"]))
                    assert result["node"]["content_hash"] == digest(op["content"]) or \
                        result.get("conflict", {}).get("resolution") == "merged"
                    # An edit replaces the content it was based on: applied as asked, or applied after restoring
                    # a node deleted meanwhile (modify_deleted, a conflict record the user can see).
                    if op.get("node_id") and (result["status"] == "applied" or
                                              result.get("conflict", {}).get("resolution") == "restored"):
                        self.superseded.add(facts["replaces"])
        self.pull(device)
        device.local = None  # what the device shows now is the server's tree (the client's reconcile step)

    def _learn(self, device: Device, n: dict) -> None:
        current = device.view.get(n["id"])
        if current is None or current["rev"] <= n["rev"]:
            device.view[n["id"]] = {"parent_id": n["parent_id"], "name": n["name"], "kind": n["kind"],
                                    "rev": n["rev"], "content_hash": n["content_hash"],
                                    "trashed": n["trashed_at"] is not None}

    def _wire(self, device: Device, op: dict, revs: dict) -> dict:
        wire = {"op_id": new_id()}
        if op["type"] == "upload":
            content = op["content"]
            body = {"size": len(content), "blocks": [{"hash": hashlib.sha256(content).hexdigest(),
                                                      "size": len(content)}]}
            if op.get("node_id"):
                base = revs.get(op["node_id"], op["base_rev"])
                self._sent_base[wire["op_id"]] = base
                body.update(node_id=op["node_id"], base_rev=base)
            else:
                body.update(parent_id=op["parent_id"], name=op["name"])
            upload = files.negotiate_upload(self.db, self.clients.store, self.owner, body)
            for missing in upload["missing"]:  # what the PUT through this upload's own link stores
                self.clients.store.put_staged(upload["_id"], missing["hash"], io.BytesIO(content), len(content))
            return {**wire, "type": "commit_upload", "upload_id": upload["_id"]}
        wire.update({k: v for k, v in op.items() if k != "content"})
        if op.get("node_id"):
            wire["base_rev"] = revs.get(op["node_id"], op["base_rev"])
        return wire

    def pull(self, device: Device) -> None:
        while True:
            page = sync.changes(self.db, self.owner, device.cursor, limit=50)
            for n in page["changes"]:
                self._learn(device, n)
            device.cursor = page["cursor"]
            if not page["has_more"]:
                return

    def retry_last(self, device: Device) -> None:
        """A network retry: the same batch again returns the same results and changes nothing."""
        if not device.last_batch:
            return
        seq = self.db.users.find_one({"_id": self.owner})["seq"]
        again = ops.apply_batch(self.db, self.clients.mongo, self.clients.store, self.owner, device.id,
                                device.last_batch)["results"]
        assert again == device.last_results
        assert self.db.users.find_one({"_id": self.owner})["seq"] == seq

    # --- the properties ------------------------------------------------------------------------------------
    def check(self) -> None:
        nodes = {n["_id"]: n for n in self.db.nodes.find({"owner": self.owner})}
        assert [i for i, n in nodes.items() if n["parent_id"] is None] == [self.root]
        live = {}
        for node_id, n in nodes.items():
            chain, cur = [], n
            while cur["parent_id"] is not None:
                assert len(chain) < len(nodes), f"cycle through {node_id}"
                parent = nodes.get(cur["parent_id"])
                assert parent is not None and parent["kind"] == "folder", f"orphan {node_id}"
                chain.append(parent)
                cur = parent
            trashed_above = any(p.get("trashed_at") is not None for p in chain)
            if n.get("trashed_at") is None:
                assert not trashed_above, f"{node_id} is live inside a trashed folder"
                live[node_id] = n
        seen = set()
        for n in live.values():
            key = (n["parent_id"], unicodedata.normalize("NFC", n["name"]).casefold())
            assert key not in seen, f"two live nodes named {key}"
            seen.add(key)
        expected = {i: (n["parent_id"], n["name"], n["kind"], n["content_hash"]) for i, n in live.items()}
        for device in self.devices:
            mine = {i: (n["parent_id"], n["name"], n["kind"], n["content_hash"]) for i, n in device.live().items()}
            assert mine == expected, f"{device.name} differs from the server"
        present = {n.get("content_hash") for n in nodes.values() if n["kind"] == "file"}
        lost = self.written - present - self.superseded
        assert not lost, f"content lost without a conflict record or trash entry: {lost}"


def run_program(clients, data, max_steps: int) -> World:
    user_id = new_id()  # a fresh user per example: its own tree, same database
    clients.db.users.insert_one({"_id": user_id, "email": f"{user_id}@example.test", "name": "P", "identities": [],
                                 "seq": 0, "journal_floor": 0, "created_at": utcnow()})
    world = World(clients, user_id)
    world.pull(world.devices[0])
    for device in world.devices[1:]:  # everyone starts from the same (empty) tree
        device.view, device.cursor = dict(world.devices[0].view), world.devices[0].cursor
    steps = data.draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(ACTIONS)), min_size=1,
                               max_size=max_steps))
    for index, action in steps:
        device = world.devices[index]
        if action == "sync":
            world.sync(device)
        elif action == "retry":
            world.retry_last(device)
        else:
            world.offline(device, action, data)
    for device in world.devices:  # everyone comes online and syncs …
        world.sync(device)
    for device in world.devices:  # … and reads what those after it sent (the last one already has it all)
        if device.cursor != world.devices[-1].cursor:
            world.pull(device)
    world.check()
    return world


@pytest.fixture
def sync_db(clients):
    clients.ensure_indexes()
    return clients


@pytest.mark.timeout(600)  # ~30 s on an idle database server; the suite's 120 s default is too tight when shared
# CI explores the same 500 programs every run (a red CI must be reproducible); the long variant explores at random.
@settings(max_examples=int(os.environ.get("PCLOUD_PROPERTY_EXAMPLES", "500")), deadline=None, database=None,
          derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_three_devices_converge(sync_db, data):
    run_program(sync_db, data, max_steps=10)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PCLOUD_PROPERTY_LONG"), reason="set PCLOUD_PROPERTY_LONG=1 (minutes)")
@pytest.mark.timeout(3600)
@settings(max_examples=2000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_three_devices_converge_long_programs(sync_db, data):
    run_program(sync_db, data, max_steps=60)
