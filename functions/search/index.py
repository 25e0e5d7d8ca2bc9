"""The SearchIndex interface (CONTRACT §9) and the choice of backend from settings.

A document is one findable thing of one owner: a graph node (its `@search` fields) or a file (`files.node`: name
and path). Every write carries the event's per-owner `seq`: a backend applies a write only when it is newer than
what it holds for that (owner, id) — deletes included, kept as tombstones — so the indexer may see events twice
or out of order (at-least-once consumption) and the index still ends at the latest state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from functions.search.query import Query


class SearchUnavailable(RuntimeError):
    """The backend did not answer or refused a request (translated into 503 at the boundary)."""


@dataclass(frozen=True)
class SearchDoc:
    owner: str
    id: str
    type: str
    seq: int
    fields: dict[str, str] = field(default_factory=dict)
    node: dict | None = None  # the node as the event carried it: returned with hits, never searched


@dataclass(frozen=True)
class Hit:
    id: str
    type: str
    score: float
    fields: dict
    node: dict | None = None


class SearchIndex(Protocol):
    name: str

    def upsert(self, docs: list[SearchDoc]) -> None:
        """Index these documents (each only if its seq is newer than what is held for it)."""

    def delete(self, owner: str, items: list[tuple[str, int]]) -> None:
        """Remove (id, seq) documents of `owner`, unless a newer write is held."""

    def search(self, owner: str, query: Query, types: list[str] | None, limit: int, offset: int) -> list[Hit]:
        """The owner's matching documents, best first, from `offset`; at most `limit`."""

    def clear(self) -> None:
        """Drop everything (a full rebuild starts here)."""

    def flush(self) -> None:
        """Return once every write made so far is searchable."""

    def close(self) -> None: ...
