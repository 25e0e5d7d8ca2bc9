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
        """Send what is new; returns counts. Raises ApiFailure when the server cannot be reached."""
        todo = self.pictures()
        counts = {"uploaded": 0, "already_there": 0, "bytes_sent": 0}
        if not todo:
            return counts
        folder_id = self._remote_folder()
        existing = {c["name"].casefold(): c for c in self.api.children(folder_id) if c["kind"] == "file"}
        progress = Progress(len(todo), sum(p.size for p in todo), self.out)
        for picture in todo:
            node, sent = self._send(picture, folder_id, existing)
            if sent is None:
                counts["already_there"] += 1
            else:
                counts["uploaded"] += 1
                counts["bytes_sent"] += sent
            existing[node["name"].casefold()] = node
            self.done[picture.rel] = {"size": picture.size, "mtime_ns": picture.mtime_ns, "node_id": node["id"],
                                      "content_hash": node["content_hash"]}
            self._save()
            progress.step(picture, "sent" if sent is not None else "kept")
        return counts

    def _send(self, picture: Picture, folder_id: str, existing: dict) -> tuple[dict, int | None]:
        blocks, content_hash, size = hash_file(picture.path)
        name = picture.path.name
        for attempt in range(2, 1000):
            there = existing.get(name.casefold())
            if there is None:
                break
            if there.get("content_hash") == content_hash:
                return there, None
            stem, suffix = os.path.splitext(picture.path.name)
            name = f"{stem} ({attempt}){suffix}"
        mtime = datetime.fromtimestamp(picture.mtime_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")
        negotiated = self.api.negotiate({"parent_id": folder_id, "name": name, "size": size, "blocks": blocks,
                                         "mtime": mtime})
        index = {b["hash"]: i for i, b in enumerate(blocks)}
        sent = 0
        for target in negotiated["missing"]:
            data = read_block(picture.path, index[target["hash"]])
            self.api.put_block(target, data)
            sent += len(data)
        return self.api.commit(negotiated["upload_id"]), sent
