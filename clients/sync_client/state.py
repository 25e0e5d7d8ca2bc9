"""The client's local database (SQLite in DIR/.pcloud/state.sqlite): mirror, local entries, op queue.

- `mirror`: the server's tree as last read from the changes feed and op results.
- `entries`: what is on disk as of the last sync, keyed by inode so renames and moves are recognised.
- `queue`: ops written before they are sent, each with its op_id, so a crash mid-sync resends the same
  op_ids and the server answers with the first results instead of applying them twice.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS mirror (
    id TEXT PRIMARY KEY, parent_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL, rev INTEGER NOT NULL,
    size INTEGER, content_hash TEXT, trashed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entries (
    inode INTEGER PRIMARY KEY, node_id TEXT, path TEXT NOT NULL, parent_inode INTEGER, name TEXT NOT NULL,
    kind TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, content_hash TEXT);
CREATE INDEX IF NOT EXISTS entries_node ON entries(node_id);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, body TEXT NOT NULL);
"""

REJECTED = "!rejected"  # entries.node_id of a local item the server refused to create (never retried)


class State:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def transaction(self):
        return _Tx(self.db)

    # meta
    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str | None) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))

    # mirror
    def upsert_node(self, node: dict) -> None:
        self.db.execute(
            "INSERT INTO mirror(id, parent_id, name, kind, rev, size, content_hash, trashed) VALUES(?,?,?,?,?,?,?,?)"
            " ON CONFLICT(id) DO UPDATE SET parent_id=excluded.parent_id, name=excluded.name, kind=excluded.kind,"
            " rev=excluded.rev, size=excluded.size, content_hash=excluded.content_hash, trashed=excluded.trashed"
            " WHERE excluded.rev >= mirror.rev",
            (node["id"], node.get("parent_id"), node.get("name") or "", node["kind"], int(node.get("rev") or 0),
             node.get("size"), node.get("content_hash"), 1 if node.get("trashed_at") or node.get("purged") else 0))

    def node(self, node_id: str | None) -> sqlite3.Row | None:
        if node_id is None:
            return None
        return self.db.execute("SELECT * FROM mirror WHERE id=?", (node_id,)).fetchone()

    def mirror(self) -> dict[str, sqlite3.Row]:
        return {row["id"]: row for row in self.db.execute("SELECT * FROM mirror")}

    # entries
    def entries(self) -> dict[int, sqlite3.Row]:
        return {row["inode"]: row for row in self.db.execute("SELECT * FROM entries")}

    def entry(self, inode: int | None) -> sqlite3.Row | None:
        if inode is None:
            return None
        return self.db.execute("SELECT * FROM entries WHERE inode=?", (inode,)).fetchone()

    def entry_for_node(self, node_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM entries WHERE node_id=?", (node_id,)).fetchone()

    def set_entry(self, inode: int, **fields) -> None:
        current = self.entry(inode)
        row = dict(current) if current else {"inode": inode, "node_id": None, "path": "", "parent_inode": None,
                                             "name": "", "kind": "file", "size": None, "mtime_ns": None,
                                             "content_hash": None}
        row.update(fields)
        self.db.execute(
            "INSERT OR REPLACE INTO entries(inode, node_id, path, parent_inode, name, kind, size, mtime_ns,"
            " content_hash) VALUES(:inode, :node_id, :path, :parent_inode, :name, :kind, :size, :mtime_ns,"
            " :content_hash)", row)

    def drop_entry(self, inode: int) -> None:
        self.db.execute("DELETE FROM entries WHERE inode=?", (inode,))

    def reparent_paths(self, old: str, new: str) -> None:
        """A folder moved on disk: every entry below it moves with it."""
        self.db.execute("UPDATE entries SET path = ? || substr(path, ?) WHERE path LIKE ? ESCAPE '\\'",
                        (new + "/", len(old) + 2, _like_prefix(old + "/")))

    # queue
    def enqueue(self, op_id: str, op_type: str, body: dict) -> None:
        self.db.execute("INSERT INTO queue(op_id, type, body) VALUES(?,?,?)", (op_id, op_type, json.dumps(body)))

    def queued(self) -> list[dict]:
        return [{"seq": r["seq"], "op_id": r["op_id"], "type": r["type"], **json.loads(r["body"])}
                for r in self.db.execute("SELECT * FROM queue ORDER BY seq")]

    def update_queued(self, seq: int, body: dict) -> None:
        clean = {k: v for k, v in body.items() if k not in ("seq", "op_id", "type")}
        self.db.execute("UPDATE queue SET body=? WHERE seq=?", (json.dumps(clean), seq))

    def dequeue(self, seq: int) -> None:
        self.db.execute("DELETE FROM queue WHERE seq=?", (seq,))


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class _Tx:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False
