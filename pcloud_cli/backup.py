"""Backup and restore of one PCloud instance: the metadata database, the key store, installed apps, settings.

Archive (`.tar.gz`, written 0600: it holds the private signing keys and secrets):
- `manifest.json` — format, time, point-in-time marker (the snapshot's cluster time), database name, per member
  its SHA-256 and size, per collection its document count and index specs, the non-secret settings;
- `db/<collection>.bson` — every document of every collection, BSON as mongodump writes it, all read inside one
  snapshot transaction (one consistent point in time across collections);
- `data/keys/…`, `data/secrets/…`, `data/apps/…` — the key store and installed app code under PCLOUD_DATA_DIR;
- `blocks/<digest>` — only with `with_blocks`: the block bytes, read through the BlobStore interface.
Blocks otherwise stay in their store (back the bucket or the blobs directory up with the store's own tools).
Redis holds nothing that must survive (rate limits, queues are rebuilt); the search index is rebuilt after a
restore from the files tree and the event log.

Restore reads and verifies the whole archive into a private temporary directory before it writes anything: a
truncated, tampered or foreign archive is refused with the member at fault. The database is written first and
dropped again if anything fails, then the data directories are swapped in by rename.
This module copies collections it does not own on purpose: a backup is of the database as a whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bson
from bson.codec_options import CodecOptions
from pymongo.read_concern import ReadConcern

from runtime.ids import utcnow
from runtime.mongo import database_name

FORMAT = "pcloud-backup/1"
DATA_DIRS = ("keys", "secrets", "apps")  # under PCLOUD_DATA_DIR
SECRET_SETTINGS = {"google_client_secret", "facebook_client_secret", "search_api_key", "sso_clients"}
_MEMBER = re.compile(r"(manifest\.json|db/[A-Za-z0-9_.\-]+\.bson|data/(keys|secrets|apps)(/[^/\0]+)+"
                     r"|blocks/[0-9a-f]{64})")
BATCH = 1000
CODEC = CodecOptions(tz_aware=True)

Progress = Callable[[str, int, int], None]  # (what, done, total)


class BackupError(Exception):
    """The archive cannot be written or restored; the message says why and nothing was changed."""


@dataclass
class Report:
    collections: dict[str, int] = field(default_factory=dict)
    files: int = 0
    blocks: int = 0
    marker: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _noop(_what: str, _done: int, _total: int) -> None:
    return None


def public_settings(settings) -> dict:
    """The settings without secrets, for the manifest (what the instance ran with; restore does not apply them)."""
    out = {}
    for key, value in asdict(settings).items():
        if key in SECRET_SETTINGS:
            value = "(secret, not saved)" if value else value
        elif key == "function_urls":
            value = dict(value)
        out[key] = value if isinstance(value, (str, int, float, bool, dict, type(None))) else \
            (list(value) if isinstance(value, tuple) else str(value))
    return out


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _index_specs(collection) -> list[dict]:
    specs = []
    for index in collection.list_indexes():
        if index["name"] == "_id_":
            continue
        # the options in the server's order: a server may compare specs order-sensitively when the
        # application later asks for the same index again
        spec = {"key": list(index["key"].items()), "name": index["name"],
                "options": [[k, v] for k, v in index.items() if k not in ("v", "key", "name", "ns")]}
        specs.append(spec)
    return specs


# --- backup ------------------------------------------------------------------------------------------------
def backup(settings, clients, target: Path, *, with_blocks: bool = False, progress: Progress = _noop) -> Report:
    """Write the archive to `target` (atomically: a temporary name renamed at the end)."""
    target = Path(target)
    db = clients.db
    report = Report()
    names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
    with tempfile.TemporaryDirectory(prefix="pcloud-backup-") as tmp:
        work = Path(tmp)
        (work / "db").mkdir()
        members: dict[str, dict] = {}
        collections: dict[str, dict] = {}
        with clients.mongo.start_session() as session:
            session.start_transaction(read_concern=ReadConcern("snapshot"))
            try:
                for i, name in enumerate(names):
                    coll = db.get_collection(name, codec_options=CODEC)
                    path = work / "db" / f"{name}.bson"
                    count = 0
                    with open(path, "wb") as fh:
                        for doc in coll.find({}, session=session, sort=[("_id", 1)]):
                            fh.write(bson.encode(doc))
                            count += 1
                    collections[name] = {"count": count, "indexes": _index_specs(coll)}
                    report.collections[name] = count
                    progress("collections", i + 1, len(names))
                marker = {"cluster_time": None, "wall_clock": utcnow().isoformat()}
                if session.operation_time is not None:
                    marker["cluster_time"] = {"t": session.operation_time.time, "i": session.operation_time.inc}
            finally:
                session.abort_transaction()
        for name in names:
            member = f"db/{name}.bson"
            members[member] = {"sha256": _sha256_file(work / member), "size": (work / member).stat().st_size}
        files = _data_files(Path(settings.data_dir))
        for rel, path in files:
            members[f"data/{rel}"] = {"sha256": _sha256_file(path), "size": path.stat().st_size, "src": path}
        report.files = len(files)
        blocks: list[str] = []
        if with_blocks and "blocks" in names:
            with open(work / "db" / "blocks.bson", "rb") as fh:
                blocks = [doc["_id"] for doc in bson.decode_file_iter(fh) if doc.get("state") != "deleting"]
            (work / "blocks").mkdir()
            for i, digest in enumerate(blocks):
                data = clients.store.get(digest)
                (work / "blocks" / digest).write_bytes(data)
                members[f"blocks/{digest}"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                progress("blocks", i + 1, len(blocks))
        report.blocks = len(blocks)
        report.marker = marker
        manifest = {
            "format": FORMAT,
            "created_at": marker["wall_clock"],
            "point_in_time": marker,
            "database": database_name(settings.mongo_url),
            "data_dir": str(settings.data_dir),
            "with_blocks": bool(with_blocks),
            "collections": collections,
            "members": {k: {"sha256": v["sha256"], "size": v["size"]} for k, v in members.items()},
            "settings": public_settings(settings),
        }
        partial = target.with_name(target.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                body = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
                _add_bytes(tar, "manifest.json", body)
                for i, (name, meta) in enumerate(members.items()):
                    src = meta.get("src") or work / name
                    tar.add(str(src), arcname=name, recursive=False, filter=_clean_info)
                    progress("archive", i + 1, len(members))
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return report


def _data_files(data_dir: Path) -> list[tuple[str, Path]]:
    """Regular files under the archived data directories (symlinks and special files are skipped)."""
    found = []
    for top in DATA_DIRS:
        root = data_dir / top
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            # an app's venv (.venv-<version>) is rebuilt by the apps runner from the app's requirements
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith(".venv"))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if path.is_symlink() or not path.is_file() or filename.endswith((".tmp", ".pyc")):
                    continue
                found.append((path.relative_to(data_dir).as_posix(), path))
    return found


def _clean_info(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


# --- verify ------------------------------------------------------------------------------------------------
class Verified:
    """An archive unpacked into a private temporary directory, every member checked against the manifest."""

    def __init__(self, root: Path, manifest: dict):
        self.root, self.manifest = root, manifest

    def path(self, member: str) -> Path:
        return self.root / member


def verify(archive: Path, into: Path) -> Verified:
    """Unpack `archive` into `into` (an empty private directory) and check it; BackupError on any problem."""
    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    seen: dict[str, tuple[str, int]] = {}
    manifest_bytes = None
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in tar:
                name = info.name
                if info.isdir():
                    continue
                if not info.isfile() or not _MEMBER.fullmatch(name) or ".." in name.split("/") or name in seen:
                    raise BackupError(f"{archive}: unexpected member {name!r}; this is not a PCloud backup "
                                      "or it was altered")
                dest = into / name
                dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                size = 0
                src = tar.extractfile(info)
                with open(dest, "wb") as out:
                    for chunk in iter(lambda src=src: src.read(1 << 20), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                seen[name] = (digest.hexdigest(), size)
                if name == "manifest.json":
                    manifest_bytes = dest.read_bytes()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{archive}: the archive is truncated or damaged ({exc.__class__.__name__}: {exc}); "
                          "nothing was restored") from None
    if manifest_bytes is None:
        raise BackupError(f"{archive}: no manifest.json; this is not a PCloud backup")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise BackupError(f"{archive}: manifest.json is not JSON; the archive was altered") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise BackupError(f"{archive}: unknown backup format {found!r} (this version reads {FORMAT})")
    listed = manifest.get("members") or {}
    problems = []
    for name, meta in sorted(listed.items()):
        if name not in seen:
            problems.append(f"{name}: missing")
        elif seen[name] != (meta.get("sha256"), meta.get("size")):
            problems.append(f"{name}: checksum or size differs from the manifest")
    for name in sorted(set(seen) - set(listed) - {"manifest.json"}):
        problems.append(f"{name}: not in the manifest")
    for name in manifest.get("collections") or {}:
        if f"db/{name}.bson" not in listed:
            problems.append(f"db/{name}.bson: collection listed without its data")
    if problems:
        raise BackupError(f"{archive}: the archive is truncated or was altered; nothing was restored: "
                          + "; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10
                                                         else ""))
    for name, meta in (manifest.get("collections") or {}).items():
        with open(into / "db" / f"{name}.bson", "rb") as fh:
            try:
                count = sum(1 for _ in bson.decode_file_iter(fh, CODEC))
            except bson.errors.BSONError as exc:
                raise BackupError(f"{archive}: db/{name}.bson is not valid BSON ({exc})") from None
        if count != meta.get("count"):
            raise BackupError(f"{archive}: db/{name}.bson has {count} documents, the manifest says {meta.get('count')}")
    return Verified(into, manifest)


# --- restore -----------------------------------------------------------------------------------------------
def instance_contents(db) -> dict[str, int]:
    """Collections of the target database that hold documents (an empty instance has none)."""
    found = {}
    for name in db.list_collection_names():
        if name.startswith("system."):
            continue
        count = db[name].estimated_document_count()
        if count:
            found[name] = count
    return found


def restore(settings, clients, archive: Path, *, force: bool = False, progress: Progress = _noop) -> Report:
    """Restore `archive` into this instance's database and data directory; see the module docstring."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    with tempfile.TemporaryDirectory(prefix=".pcloud-restore-", dir=data_dir) as tmp:
        os.chmod(tmp, 0o700)
        verified = verify(Path(archive), Path(tmp))
        manifest = verified.manifest
        db = clients.db
        present = instance_contents(db)
        if present and not force:
            shown = ", ".join(f"{k} ({v})" for k, v in sorted(present.items())[:6])
            raise BackupError(f"this instance is not empty (database {db.name}: {shown}); restore into an empty "
                              "instance, or pass --force to replace everything in it")
        if manifest.get("data_dir") and manifest["data_dir"] != str(data_dir):
            report.warnings.append(f"the backup came from PCLOUD_DATA_DIR={manifest['data_dir']}; installed apps "
                                   f"recorded there are now under {data_dir} (reinstall them if they fail to start)")
        for name in list(db.list_collection_names()):
            if not name.startswith("system."):
                db.drop_collection(name)
        try:
            _restore_collections(db, verified, report, progress)
            _restore_blocks(clients, verified, report, progress)
            _swap_data_dirs(data_dir, verified, report)
        except BaseException as exc:
            for name in list(db.list_collection_names()):
                if not name.startswith("system."):
                    db.drop_collection(name)
            if isinstance(exc, BackupError):
                raise
            raise BackupError(f"restore failed ({exc.__class__.__name__}: {exc}); the database was left empty "
                              "and the data directory unchanged") from exc
    report.marker = manifest.get("point_in_time") or {}
    return report


def _restore_collections(db, verified: Verified, report: Report, progress: Progress) -> None:
    collections = verified.manifest.get("collections") or {}
    for i, (name, meta) in enumerate(sorted(collections.items())):
        coll = db.create_collection(name)
        for spec in meta.get("indexes") or []:
            options = dict(spec.get("options") or [])
            coll.create_index([(k, v) for k, v in spec["key"]], name=spec["name"], **options)
        batch = []
        with open(verified.path(f"db/{name}.bson"), "rb") as fh:
            for doc in bson.decode_file_iter(fh, CODEC):
                batch.append(doc)
                if len(batch) >= BATCH:
                    coll.insert_many(batch, ordered=True)
                    batch = []
        if batch:
            coll.insert_many(batch, ordered=True)
        report.collections[name] = meta.get("count", 0)
        progress("collections", i + 1, len(collections))


def _restore_blocks(clients, verified: Verified, report: Report, progress: Progress) -> None:
    blocks = sorted(m for m in verified.manifest["members"] if m.startswith("blocks/"))
    for i, member in enumerate(blocks):
        clients.store.put(member.split("/", 1)[1], verified.path(member).read_bytes())
        progress("blocks", i + 1, len(blocks))
    report.blocks = len(blocks)


def _swap_data_dirs(data_dir: Path, verified: Verified, report: Report) -> None:
    """Each archived data directory replaces the instance's by rename (the old one is removed afterwards)."""
    staged = verified.root / "data"
    old = verified.root / "old"
    old.mkdir()
    for top in DATA_DIRS:
        new = staged / top
        current = data_dir / top
        if not new.is_dir():
            continue
        for path in new.rglob("*"):
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        os.chmod(new, 0o700)
        if current.exists():
            os.replace(current, old / top)
        os.replace(new, current)
        report.files += sum(1 for p in current.rglob("*") if p.is_file())
    shutil.rmtree(old, ignore_errors=True)
