"""Camera backup (`--camera DIR`): every new picture in DIR goes up into /Camera, as a phone's camera upload does.

One way only: nothing is downloaded or deleted. New pictures are found by name suffix (the server decides what is
really an image), sent with the §3 upload flow (4 MiB blocks, only the missing ones, commit), and remembered in
DIR/.pcloud/camera.json by (path, size, mtime) so an unchanged picture is never hashed or sent again. A name that
is taken in /Camera by other content gets a " (2)" suffix; the same content already there is just remembered.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TextIO

from clients.sync_client.api import ApiFailure, SyncApi
from clients.sync_client.hashing import hash_file, read_block

BATCH_FILES = 100  # pictures per negotiation request
BATCH_BLOCKS = 2000  # blocks per negotiation request (the server takes up to PCLOUD_MAX_BLOCKS_PER_FILE)
PICTURES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}
STATE_DIR = ".pcloud"


@dataclass
class Picture:
    path: Path
    rel: str
    size: int
    mtime_ns: int


class Progress:
    """A one-line progress bar on a terminal, one line per file elsewhere (logs, CI)."""

    def __init__(self, total_files: int, total_bytes: int, out: TextIO):
        self.total_files, self.total_bytes, self.out = total_files, total_bytes, out
        self.files = self.bytes = 0
        self.tty = getattr(out, "isatty", lambda: False)()

    def step(self, picture: Picture, what: str) -> None:
        self.files += 1
        self.bytes += picture.size
        share = self.bytes / self.total_bytes if self.total_bytes else 1.0
        bar = "#" * int(share * 30)
        line = (f"[{bar:<30}] {self.files}/{self.total_files} files {self.bytes / 1e6:.1f}/"
                f"{self.total_bytes / 1e6:.1f} MB {what} {picture.rel}")
        if self.tty:
            self.out.write("\r" + line[:120].ljust(120))
            if self.files == self.total_files:
                self.out.write("\n")
        else:
            self.out.write(line + "\n")
        self.out.flush()


class CameraBackup:
    def __init__(self, folder: Path, api: SyncApi, remote: str = "/Camera", out: TextIO = sys.stderr):
        self.folder = Path(folder)
        self.api, self.out = api, out
        self.remote = "/" + remote.strip("/")
        self.state_path = self.folder / STATE_DIR / "camera.json"
        self.done: dict[str, dict] = self._load()

    def _load(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a damaged state file only costs re-hashing: uploads are deduplicated by hash

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.state_path.with_suffix(".tmp")
        temp.write_text(json.dumps(self.done, indent=0, sort_keys=True))
        os.replace(temp, self.state_path)

    def pictures(self) -> list[Picture]:
        """Pictures under the folder (not in .pcloud/), oldest first, that are new or changed since sent."""
        found = []
        for path in sorted(self.folder.rglob("*")):
            rel = path.relative_to(self.folder).as_posix()
            if rel.split("/", 1)[0] == STATE_DIR or path.suffix.lower() not in PICTURES or not path.is_file():
                continue
            stat = path.stat()
            seen = self.done.get(rel)
            if seen and seen["size"] == stat.st_size and seen["mtime_ns"] == stat.st_mtime_ns:
                continue
            found.append(Picture(path, rel, stat.st_size, stat.st_mtime_ns))
        return sorted(found, key=lambda p: (p.mtime_ns, p.rel))

    def _remote_folder(self) -> str:
        node = self.api.root()
        for name in PurePosixPath(self.remote).parts[1:]:
            match = self._child_folder(node["id"], name)
            if match is None:
                try:
                    match = self.api.create_folder(node["id"], name)
                except ApiFailure as exc:  # made meanwhile by another client
                    match = self._child_folder(node["id"], name) if exc.code == "name_taken" else None
                    if match is None:
                        raise
            node = match
        return node["id"]

    def _child_folder(self, parent_id: str, name: str) -> dict | None:
        return next((c for c in self.api.children(parent_id)
                     if c["kind"] == "folder" and c["name"].casefold() == name.casefold()), None)

    def run_once(self) -> dict:
        """Send what is new; returns counts. Raises ApiFailure when the server cannot be reached.

        Pictures go in groups (BATCH_FILES files, BATCH_BLOCKS blocks at most): one request negotiates the group
        and commits every picture whose blocks the server already holds; the others get their missing blocks
        PUT, then one request commits them all. An unchanged re-backup costs one request per group."""
        todo = self.pictures()
        counts = {"uploaded": 0, "already_there": 0, "bytes_sent": 0}
        if not todo:
            return counts
        folder_id = self._remote_folder()
        existing = {c["name"].casefold(): c for c in self.api.children(folder_id) if c["kind"] == "file"}
        progress = Progress(len(todo), sum(p.size for p in todo), self.out)
        group: list[tuple[Picture, dict]] = []
        for picture in todo:
            blocks, content_hash, size = hash_file(picture.path)
            if group and (len(group) >= BATCH_FILES or
                          sum(len(b["blocks"]) for _, b in group) + len(blocks) > BATCH_BLOCKS):
                self._send_group(group, folder_id, existing, counts, progress)
                group = []
            name, there = self._name_for(picture, content_hash, existing)
            if there is not None and "id" not in there:  # the same picture twice in this group: send it first
                self._send_group(group, folder_id, existing, counts, progress)
                group = []
                name, there = self._name_for(picture, content_hash, existing)
            if there is not None:
                counts["already_there"] += 1
                self._remember(picture, there)
                progress.step(picture, "kept")
                continue
            mtime = datetime.fromtimestamp(picture.mtime_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")
            existing[name.casefold()] = {"name": name, "content_hash": content_hash}  # taken by this group
            group.append((picture, {"parent_id": folder_id, "name": name, "size": size, "blocks": blocks,
                                    "mtime": mtime, "commit": "if_complete"}))
        if group:
            self._send_group(group, folder_id, existing, counts, progress)
        return counts

    @staticmethod
    def _name_for(picture: Picture, content_hash: str, existing: dict) -> tuple[str, dict | None]:
        """The name to upload under (" (2)" when another content has it), or the node holding this content."""
        name = picture.path.name
        for attempt in range(2, 1000):
            there = existing.get(name.casefold())
            if there is None:
                break
            if there.get("content_hash") == content_hash:
                return name, there
            stem, suffix = os.path.splitext(picture.path.name)
            name = f"{stem} ({attempt}){suffix}"
        return name, None

    def _remember(self, picture: Picture, node: dict) -> None:
        self.done[picture.rel] = {"size": picture.size, "mtime_ns": picture.mtime_ns, "node_id": node["id"],
                                  "content_hash": node["content_hash"]}
        self._save()

    def _send_group(self, group: list[tuple[Picture, dict]], folder_id: str, existing: dict, counts: dict,
                    progress: Progress) -> None:
        results = self.api.negotiate_batch([body for _, body in group])
        to_commit, sent_of = [], {}
        for (picture, body), result in zip(group, results, strict=True):
            if result.get("error"):
                raise ApiFailure(result["status"], result["error"]["code"], result["error"]["message"])
            if result.get("commit_error"):
                raise ApiFailure(409, result["commit_error"]["code"], result["commit_error"]["message"])
            if result.get("committed"):
                self._done_one(picture, result["node"], 0, existing, counts, progress)
                continue
            index = {b["hash"]: i for i, b in enumerate(body["blocks"])}
            sent = 0
            for target in self._all_targets(result):
                data = read_block(picture.path, index[target["hash"]])
                self.api.put_block(target, data)
                sent += len(data)
            to_commit.append((picture, result["upload_id"]))
            sent_of[result["upload_id"]] = sent
        if not to_commit:
            return
        committed = self.api.commit_batch([upload_id for _, upload_id in to_commit])
        for (picture, upload_id), result in zip(to_commit, committed, strict=True):
            if result.get("error"):
                raise ApiFailure(result["status"], result["error"]["code"], result["error"]["message"])
            self._done_one(picture, result["node"], sent_of[upload_id], existing, counts, progress)

    def _all_targets(self, result: dict):
        """Every presigned PUT of an upload: the ones negotiated, then further windows when there are more."""
        yield from result["missing"]
        after = result.get("next_after")
        while after:
            page = self.api.upload_urls(result["upload_id"], after)
            yield from page["missing"]
            after = page["next_after"]

    def _done_one(self, picture: Picture, node: dict, sent: int, existing: dict, counts: dict,
                  progress: Progress) -> None:
        counts["uploaded"] += 1
        counts["bytes_sent"] += sent
        existing[node["name"].casefold()] = node
        self._remember(picture, node)
        progress.step(picture, "sent" if sent else "kept")
