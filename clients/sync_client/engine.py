"""One sync cycle, as the Flutter app does it: scan → send queued ops → read the changes feed → make disk match.

- scan: compare the folder with `entries` (by inode, so renames and moves are recognised) and queue ops,
  updating `entries` in the same SQLite transaction — a crash never queues a change twice or loses one.
- flush: send queued ops in batches (an op waits until the folder it needs has a server id); uploads are
  negotiated, only missing blocks are PUT, and the commit is a `commit_upload` op the server referees.
- pull: only with an empty queue (so `base_rev`s are what the user saw), read the feed into `mirror`.
- reconcile: move, create, download and delete local items until the disk equals the server's live tree;
  a conflicted copy made by the server is just a node whose name differs, so the local file is renamed.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from clients.sync_client.api import ApiFailure, SyncApi
from clients.sync_client.hashing import hash_file, read_block
from clients.sync_client.state import REJECTED, State

log = logging.getLogger("pcloud.sync_client")

STATE_DIR = ".pcloud"
TEMP_PREFIX = ".pcloud-tmp-"
BATCH = 200
RETRY_UPLOAD = ("blocks_missing", "upload_expired", "busy")


@dataclass(frozen=True)
class Local:
    inode: int
    path: str  # relative, "/"-separated
    parent_inode: int
    name: str
    kind: str
    size: int
    mtime_ns: int


class SyncClient:
    def __init__(self, folder: Path, api: SyncApi, device_name: str, platform: str = "android"):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.api = api
        self.device_name = device_name
        self.platform = platform
        self.state = State(self.folder / STATE_DIR / "state.sqlite")
        self.root_inode = os.stat(self.folder).st_ino

    def close(self) -> None:
        self.state.close()

    # --- set-up ---------------------------------------------------------------------------------------------
    @property
    def device_id(self) -> str:
        device_id = self.state.get("device_id")
        if device_id is None:
            device_id = self.api.register_device(self.device_name, self.platform)
            self.state.put("device_id", device_id)
        return device_id

    @property
    def root_id(self) -> str:
        root_id = self.state.get("root_id")
        if root_id is None:
            try:
                root_id = self.api.root()["id"]
            except ApiFailure as exc:
                if exc.status != 404:
                    raise
                page = self.api.changes(None, limit=1)  # the root is the first node of every tree
                root_id = next(n["id"] for n in page["changes"] if n["parent_id"] is None)
            self.state.put("root_id", root_id)
        return root_id

    def prepare(self) -> None:
        """Register the device and learn the root before anything is queued."""
        if self.device_id and self.root_id:
            return

    # --- the cycle --------------------------------------------------------------------------------------------
    def sync_once(self) -> bool:
        """True when the folder and the server are in step; False when ops are still queued (offline)."""
        self.prepare()
        self.scan()
        if not self.flush():
            return False
        self.pull()
        self.reconcile()
        return True

    # --- scan -------------------------------------------------------------------------------------------------
    def _walk(self) -> dict[int, Local]:
        found: dict[int, Local] = {}

        def visit(directory: Path, rel: str, parent_inode: int) -> None:
            with os.scandir(directory) as it:
                items = sorted(it, key=lambda d: d.name)
            for item in items:
                if not rel and item.name == STATE_DIR:
                    continue
                info = item.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    continue
                path = f"{rel}/{item.name}" if rel else item.name
                kind = "folder" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else None
                if kind is None:
                    continue
                found[info.st_ino] = Local(info.st_ino, path, parent_inode, item.name, kind, info.st_size,
                                           info.st_mtime_ns)
                if kind == "folder":
                    visit(Path(item.path), path, info.st_ino)

        visit(self.folder, "", self.root_inode)
        return found

    def scan(self) -> None:
        disk = self._walk()
        entries = self.state.entries()
        with self.state.transaction():
            gone = {i for i, e in entries.items() if i not in disk or disk[i].kind != e["kind"]}
            for inode in gone:
                e = entries[inode]
                if e["node_id"] and e["node_id"] != REJECTED and e["parent_inode"] not in gone:
                    self._enqueue("delete", node_id=e["node_id"], base_rev=self._seen_rev(e["node_id"]))
                self.state.drop_entry(inode)
            for loc in sorted(disk.values(), key=lambda item: item.path.count("/")):
                e = None if loc.inode in gone else entries.get(loc.inode)
                if e is None:
                    self._scan_new(loc)
                else:
                    self._scan_known(loc, e)

    def _scan_new(self, loc: Local) -> None:
        fields = {"path": loc.path, "parent_inode": loc.parent_inode, "name": loc.name, "kind": loc.kind,
                  "size": loc.size, "mtime_ns": loc.mtime_ns, "node_id": None, "content_hash": None}
        if loc.kind == "folder":
            self._enqueue("create_folder", inode=loc.inode, parent_inode=loc.parent_inode, name=loc.name)
        else:
            _, fields["content_hash"], _ = hash_file(self.folder / loc.path)
            self._enqueue("upload", inode=loc.inode, parent_inode=loc.parent_inode, name=loc.name)
        self.state.set_entry(loc.inode, **fields)

    def _scan_known(self, loc: Local, e) -> None:
        fields = {"path": loc.path, "parent_inode": loc.parent_inode, "name": loc.name}
        if e["node_id"] != REJECTED:
            seen = self._seen_rev(e["node_id"])
            if loc.parent_inode != e["parent_inode"]:
                self._enqueue("move", inode=loc.inode, parent_inode=loc.parent_inode, base_rev=seen)
            if loc.name != e["name"]:
                self._enqueue("rename", inode=loc.inode, name=loc.name, base_rev=seen)
            if loc.kind == "file" and (loc.size, loc.mtime_ns) != (e["size"], e["mtime_ns"]):
                _, digest, _ = hash_file(self.folder / loc.path)
                fields.update(size=loc.size, mtime_ns=loc.mtime_ns, content_hash=digest)
                if digest != e["content_hash"]:
                    self._enqueue("upload", inode=loc.inode, overwrite=True, base_rev=seen)
        self.state.set_entry(loc.inode, **fields)

    def _seen_rev(self, node_id: str | None) -> int | None:
        """The rev the disk reflects: the op's base_rev, fixed when the change is seen (see _advance)."""
        node = self.state.node(node_id)
        return None if node is None else node["rev"]

    def _enqueue(self, op_type: str, **body) -> None:
        body = {k: v for k, v in body.items() if v is not None}
        self.state.enqueue(f"{self.device_id[:8]}-{uuid.uuid4().hex}", op_type, body)

    # --- flush ------------------------------------------------------------------------------------------------
    def flush(self) -> bool:
        while True:
            queued = self.state.queued()
            if not queued:
                return True
            batch, touched = [], set()
            try:
                for op in queued:
                    wire = self._resolve(op, touched)
                    if wire == "drop":
                        self.state.dequeue(op["seq"])
                        continue
                    if wire is None:
                        break
                    batch.append((op, wire))
                    if len(batch) >= BATCH:
                        break
                if not batch:
                    # the head waits for something that will never come (its folder was refused): drop it
                    log.warning("dropping op %s: it cannot be resolved", queued[0])
                    self.state.dequeue(queued[0]["seq"])
                    continue
                answer = self.api.ops(self.device_id, [wire for _, wire in batch])
            except ApiFailure as exc:
                if exc.status == 0 or exc.status >= 500 or exc.status == 429:
                    log.warning("server unreachable, ops stay queued: %s", exc)
                    return False
                raise
            with self.state.transaction():
                for (op, _), result in zip(batch, answer["results"], strict=True):
                    self._apply_result(op, result)
                    self.state.dequeue(op["seq"])

    def _node_of(self, op: dict) -> str | None | str:
        if op.get("node_id"):
            return op["node_id"]
        e = self.state.entry(op.get("inode"))
        if e is None or e["node_id"] == REJECTED:
            return "drop"
        return e["node_id"]

    def _parent_of(self, op: dict) -> str | None:
        if op["parent_inode"] == self.root_inode:
            return self.root_id
        e = self.state.entry(op["parent_inode"])
        if e is None or e["node_id"] == REJECTED:
            return "drop"
        return e["node_id"]

    def _resolve(self, op: dict, touched: set):
        """The wire op, None when it must wait for an earlier op's result, or "drop"."""
        kind, wire = op["type"], {"op_id": op["op_id"]}
        if kind == "create_folder" and self.state.entry(op["inode"]) is None:
            return "drop"  # made and removed again while offline: nothing to tell the server
        node_id = None
        if kind in ("delete", "rename", "move") or op.get("overwrite"):
            node_id = self._node_of(op)
            if node_id == "drop":
                return "drop"
            if node_id is None or node_id in touched:
                return None
            current = self.state.node(node_id)
            if current is None:
                return "drop"
            op["sent_base"] = op["base_rev"] if op.get("base_rev") is not None else current["rev"]
            wire.update(node_id=node_id, base_rev=op["sent_base"])
        if "parent_inode" in op:
            parent_id = self._parent_of(op)
            if parent_id == "drop":
                return "drop"
            if parent_id is None:
                return None
            wire["parent_id"] = parent_id
        if node_id:
            touched.add(node_id)
        if kind == "upload":
            return self._upload(op, wire)
        if kind in ("rename", "create_folder"):
            wire["name"] = op["name"]
        return {**wire, "type": kind}

    def _upload(self, op: dict, wire: dict):
        e = self.state.entry(op["inode"])
        if e is None:
            return "drop"
        path = self.folder / e["path"]
        try:
            before = os.stat(path)
            blocks, digest, size = hash_file(path)
        except FileNotFoundError:
            return "drop"
        body = {"size": size, "blocks": blocks, "mtime": None}
        if op.get("overwrite"):
            body.update(node_id=wire["node_id"], base_rev=wire["base_rev"])
            current = self.state.node(wire["node_id"])
            body.update(parent_id=current["parent_id"], name=current["name"])
        else:
            body.update(parent_id=wire["parent_id"], name=op["name"])
        body = {k: v for k, v in body.items() if v is not None}
        try:
            negotiated = self.api.negotiate(body)
        except ApiFailure as exc:
            if exc.status == 404 and op.get("overwrite"):
                self._as_new_file(op["inode"])  # purged elsewhere: keep this edit as a new file
                return "drop"
            if exc.code != "parent_trashed" or not self._bring_back(body["parent_id"]):
                raise
            negotiated = self.api.negotiate(body)
        index = {b["hash"]: i for i, b in enumerate(blocks)}
        for target in negotiated.get("missing", []):
            self.api.put_block(target, read_block(path, index[target["hash"]]))
        self.state.set_entry(op["inode"], content_hash=digest, size=before.st_size, mtime_ns=before.st_mtime_ns)
        return {"op_id": op["op_id"], "type": "commit_upload", "upload_id": negotiated["upload_id"]}

    def _as_new_file(self, inode: int) -> None:
        """The node this file was is gone for good (purged): upload the local content as a new file."""
        e = self.state.entry(inode)
        if e is not None:
            self.state.set_entry(inode, node_id=None)
            self._enqueue("upload", inode=inode, parent_inode=e["parent_inode"], name=e["name"])

    def _bring_back(self, folder_id: str) -> bool:
        """A new file for a folder deleted elsewhere meanwhile: ask the referee to restore the folder first
        (a move into the folder it is in, on the rev we saw, is `modify_deleted` → restored, under a
        conflicted-copy name if its own was taken meanwhile), as the table does for an edit in a trashed folder."""
        folder = self.state.node(folder_id)
        if folder is None:
            return False
        answer = self.api.ops(self.device_id, [{"op_id": f"{self.device_id[:8]}-{uuid.uuid4().hex}", "type": "move",
                                                "node_id": folder_id, "parent_id": folder["parent_id"],
                                                "base_rev": folder["rev"]}])
        result = answer["results"][0]
        if result.get("node"):
            self.state.upsert_node(result["node"])
        return result["status"] != "rejected"

    def _apply_result(self, op: dict, result: dict) -> None:
        node = result.get("node")
        if node:
            self.state.upsert_node(node)
        creates = op["type"] == "create_folder" or (op["type"] == "upload" and not op.get("overwrite"))
        if result["status"] == "rejected":
            code = (result.get("error") or {}).get("code") or (result.get("conflict") or {}).get("type")
            log.warning("op %s %s rejected: %s", op["type"], op["op_id"], code)
            if op["type"] == "upload" and code in RETRY_UPLOAD and op.get("attempt", 0) < 3 \
                    and self.state.entry(op.get("inode")) is not None:
                # the blocks or the upload went away before the commit: upload again under a new op_id
                again = {k: v for k, v in op.items() if k not in ("seq", "op_id", "type", "sent_base")}
                again["attempt"] = op.get("attempt", 0) + 1
                self._enqueue("upload", **again)
                return
            e = self.state.entry(op.get("inode"))
            if op.get("overwrite") and code == "not_found" and e is not None:
                self._as_new_file(op["inode"])  # edited here while the file was purged elsewhere
                return
            if creates and e is not None:
                self.state.set_entry(op["inode"], node_id=REJECTED)
            return
        if result["status"] == "applied" and node and op.get("sent_base") is not None \
                and node["rev"] == op["sent_base"] + 1:
            self._advance(node["id"], node["rev"])
        if result.get("conflict"):
            log.warning("conflict %s on %s: %s", result["conflict"]["type"], op["type"],
                        result["conflict"]["resolution"])
        if node and op.get("inode") is not None and (creates or op.get("overwrite")):
            if self.state.entry(op["inode"]) is not None:
                if node["kind"] == "file":
                    self.state.set_entry(op["inode"], node_id=node["id"])
                elif self.state.entry_for_node(node["id"]) is None:
                    self.state.set_entry(op["inode"], node_id=node["id"])
                else:  # merged into a folder this device already has: fold the local one into it
                    self._fold_into(op["inode"], node["id"])

    def _advance(self, node_id: str, rev: int) -> None:
        """Our own op was the only change since base_rev: later queued ops on the node may build on it.

        Otherwise they keep the rev the disk reflects, so a change made elsewhere meanwhile is refereed
        instead of silently overwritten.
        """
        for queued in self.state.queued():
            if queued.get("base_rev") is None:
                continue
            target = queued.get("node_id") or (self.state.entry(queued.get("inode")) or {"node_id": None})["node_id"]
            if target == node_id:
                queued["base_rev"] = rev
                self.state.update_queued(queued["seq"], queued)

    def _fold_into(self, inode: int, node_id: str) -> None:
        dup, keep = self.state.entry(inode), self.state.entry_for_node(node_id)
        source, target = self.folder / dup["path"], self.folder / keep["path"]
        for child in sorted(os.listdir(source)):
            dest = target / child
            while dest.exists():
                dest = dest.with_name(dest.name + " (merged)")
            os.rename(source / child, dest)  # the next scan sees moves (known children) or new items
        os.rmdir(source)
        self.state.drop_entry(inode)

    # --- pull -------------------------------------------------------------------------------------------------
    def pull(self) -> None:
        cursor = self.state.get("cursor")
        while True:
            try:
                page = self.api.changes(cursor)
            except ApiFailure as exc:
                if exc.status == 410:
                    log.warning("cursor expired: reading the whole tree again")
                    self.state.db.execute("DELETE FROM mirror")
                    cursor = None
                    continue
                raise
            with self.state.transaction():
                for node in page["changes"]:
                    self.state.upsert_node(node)
                self.state.put("cursor", page["cursor"])
            cursor = page["cursor"]
            if not page["has_more"]:
                return

    # --- reconcile --------------------------------------------------------------------------------------------
    def live_paths(self) -> dict[str, str]:
        """node id → relative path of every live node below the root (the server's tree as this device knows it)."""
        mirror, root, paths = self.state.mirror(), self.root_id, {}

        def path_of(node_id: str, depth: int = 0) -> str | None:
            if node_id in paths:
                return paths[node_id]
            node = mirror.get(node_id)
            if node is None or node["trashed"] or depth > 10_000:
                return None
            if node["parent_id"] is None:
                return "" if node_id == root else None
            parent = path_of(node["parent_id"], depth + 1)
            if parent is None:
                return None
            paths[node_id] = f"{parent}/{node['name']}" if parent else node["name"]
            return paths[node_id]

        for node_id in mirror:
            path_of(node_id)
        paths.pop(root, None)
        return {k: v for k, v in paths.items() if v}

    def reconcile(self) -> None:
        if self.state.queued():
            return
        live, mirror = self.live_paths(), self.state.mirror()
        with self.state.transaction():
            for e in sorted(self.state.entries().values(), key=lambda r: -r["path"].count("/")):
                if e["node_id"] and e["node_id"] != REJECTED and e["node_id"] not in live:
                    self._remove_local(e)
            entries = self.state.entries()
            by_node = {}
            for e in entries.values():
                if e["node_id"] and e["node_id"] != REJECTED:
                    by_node.setdefault(e["node_id"], e)
            levels: dict[int, list] = {}
            for node_id, want in live.items():
                levels.setdefault(want.count("/"), []).append((node_id, want))
            self._parked: dict[int, str] = {}
            for depth in sorted(levels):
                missing = []
                for node_id, want in levels[depth]:  # first what is already here: moves and new content
                    e = by_node.get(node_id)
                    e = self.state.entry(e["inode"]) if e is not None else None  # may have moved with a parent
                    if e is None or not self._on_disk(e):
                        if e is not None:
                            self.state.drop_entry(e["inode"])
                        missing.append((node_id, want))
                        continue
                    if e["path"] != want:
                        e = self._move_local(e, want)
                        if e is None:
                            continue
                    node = mirror[node_id]
                    if node["kind"] == "file" and node["content_hash"] != e["content_hash"] and self._unchanged(e):
                        self._download(node, want, e)
                for node_id, want in missing:  # then what this device does not have yet
                    self._materialise(mirror[node_id], want)
            for inode, back in self._parked.items():  # moved aside but not placed (its name was held locally)
                e = self.state.entry(inode)
                if e is not None and TEMP_PREFIX in e["path"] and not os.path.lexists(self.folder / back):
                    self._rename(e, back)

    def _on_disk(self, e) -> bool:
        try:
            return os.stat(self.folder / e["path"], follow_symlinks=False).st_ino == e["inode"]
        except FileNotFoundError:
            return False

    def _unchanged(self, e) -> bool:
        try:
            info = os.stat(self.folder / e["path"])
        except FileNotFoundError:
            return False
        return e["kind"] == "folder" or (info.st_size, info.st_mtime_ns) == (e["size"], e["mtime_ns"])

    def _remove_local(self, e) -> None:
        target = self.folder / e["path"]
        if self._on_disk(e) and self._unchanged(e):
            if e["kind"] == "file":
                target.unlink()
            else:
                try:
                    target.rmdir()
                except OSError:  # something new inside: keep it; the next scan uploads it to a fresh folder
                    pass
        self.state.drop_entry(e["inode"])

    def _move_local(self, e, want: str):
        target = self.folder / want
        if os.path.lexists(target):
            occupant = self.state.entry(os.stat(target, follow_symlinks=False).st_ino)
            if occupant is None:
                return None  # a new local item holds the name; the next cycle uploads it first
            if occupant["inode"] != e["inode"]:
                parked = f"{occupant['path'].rsplit('/', 1)[0] + '/' if '/' in occupant['path'] else ''}" \
                         f"{TEMP_PREFIX}{occupant['inode']}"
                self._parked[occupant["inode"]] = occupant["path"]
                self._rename(occupant, parked)
        return self._rename(self.state.entry(e["inode"]), want)

    def _rename(self, e, new_path: str):
        os.rename(self.folder / e["path"], self.folder / new_path)
        parent = new_path.rsplit("/", 1)[0] if "/" in new_path else ""
        parent_inode = os.stat(self.folder / parent).st_ino if parent else self.root_inode
        if e["kind"] == "folder":
            self.state.reparent_paths(e["path"], new_path)
        self.state.set_entry(e["inode"], path=new_path, name=new_path.rsplit("/", 1)[-1], parent_inode=parent_inode)
        return self.state.entry(e["inode"])

    def _materialise(self, node, want: str) -> None:
        target = self.folder / want
        parent = want.rsplit("/", 1)[0] if "/" in want else ""
        if not (self.folder / parent).is_dir():
            return
        if os.path.lexists(target):
            info = os.stat(target, follow_symlinks=False)
            if self.state.entry(info.st_ino) is None and node["kind"] == "folder" and stat.S_ISDIR(info.st_mode):
                pass  # adopt a same-named local folder below
            else:
                return  # something local holds the name; it is sent next cycle, then the server decides
        if node["kind"] == "folder":
            target.mkdir(exist_ok=True)
            info = os.stat(target)
            self.state.set_entry(info.st_ino, node_id=node["id"], path=want, name=node["name"], kind="folder",
                                 parent_inode=self._parent_inode(want), size=None, mtime_ns=None, content_hash=None)
        else:
            self._download(node, want, None)

    def _parent_inode(self, path: str) -> int:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        return os.stat(self.folder / parent).st_ino if parent else self.root_inode

    def _download(self, node, want: str, old) -> None:
        temp_dir = self.folder / STATE_DIR / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        temp = temp_dir / f"{node['id']}.part"
        try:
            with open(temp, "wb") as out:
                self.api.download(node["id"], out)
                out.flush()
                os.fsync(out.fileno())
            _, digest, _ = hash_file(temp)
            os.replace(temp, self.folder / want)
        except ApiFailure as exc:
            log.warning("could not download %s: %s", want, exc)
            temp.unlink(missing_ok=True)
            return
        if old is not None:
            self.state.drop_entry(old["inode"])
        info = os.stat(self.folder / want)
        self.state.set_entry(info.st_ino, node_id=node["id"], path=want, name=want.rsplit("/", 1)[-1], kind="file",
                             parent_inode=self._parent_inode(want), size=info.st_size, mtime_ns=info.st_mtime_ns,
                             content_hash=digest)

