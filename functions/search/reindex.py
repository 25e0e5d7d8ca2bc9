"""Full rebuild of the search index (`python -m functions.search.reindex`), with a progress bar.

Sources: every live file of every user (functions/files' tree: names and paths) and every graph event still in the
log (`data.search` of each node's latest state; replayed in seq order, deletes included). Files are indexed at
their owner's current event seq, read before the tree: a change committed meanwhile has a higher seq, is pending
for the indexer, and wins. The indexer may keep running during a rebuild.

Limitation: the graph's side is rebuilt from the event log, so a node unchanged for longer than
PCLOUD_EVENT_RETENTION_DAYS (its events swept) is not restored by a rebuild — the search package sits below the
graph and cannot read its collection; bump such nodes (any update) to re-index them.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from functions.files import service as files
from functions.search import service
from functions.search.index import SearchDoc
from runtime import events
from runtime.clients import clients_for
from runtime.settings import load_settings

BATCH = 2000


def rebuild(db, index, *, progress: bool = True, out=sys.stderr) -> dict:
    """Clear the index and fill it again; returns counts."""
    index.clear()
    total = files.count_live(db) + events.count_events(db, "graph.node")
    bar = tqdm(total=total, unit="doc", file=out, disable=not progress, desc="reindex")
    counts = {"files": 0, "graph_events": 0}
    for owner in files.owners(db):
        snapshot = events.current_seq(db, owner)
        docs: list[SearchDoc] = []
        for node, path in files.iter_live(db, owner):
            docs.append(SearchDoc(owner, node["_id"], service.FILES_TYPE, snapshot,
                                  {"name": node.get("name", ""), "path": path}, files.node_json(node)))
            if len(docs) >= BATCH:
                index.upsert(docs)
                counts["files"] += len(docs)
                bar.update(len(docs))
                docs = []
        if docs:
            index.upsert(docs)
            counts["files"] += len(docs)
            bar.update(len(docs))
    batch: list[dict] = []
    for ev in events.iter_events(db, "graph.node"):
        batch.append(ev)
        if len(batch) >= BATCH:
            service.apply_events(index, batch)
            counts["graph_events"] += len(batch)
            bar.update(len(batch))
            batch = []
    if batch:
        service.apply_events(index, batch)
        counts["graph_events"] += len(batch)
        bar.update(len(batch))
    index.flush()
    bar.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.search.reindex", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    settings = load_settings()
    clients = clients_for(settings)
    counts = rebuild(clients.db, service.index_for(settings), progress=not args.quiet)
    print(f"reindexed {counts['files']} files and {counts['graph_events']} graph events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
