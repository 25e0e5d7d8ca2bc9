"""Models of GET /search/v1 (CONTRACT §9) for /openapi.json; the query is checked in routes/service (clear codes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from runtime.schemas import Query


class SearchHit(BaseModel):
    id: str
    type: str = Field(description="ns.Type of a graph node, or files.node for a file")
    score: float = Field(description="higher is better")
    node: dict[str, Any] = Field(description="the file node (§3) or graph node (§7) as last indexed")


class SearchPage(BaseModel):
    """Hits, best first."""

    items: list[SearchHit]
    next_cursor: str | None


class SearchQuery(Query):
    q: str = Field(max_length=1000, description="words ANDed, case- and accent-insensitive; word* a prefix; "
                                                "\"a b\" a phrase; field:value an exact field (name:, path:, …)")
    type: str | None = Field(None, description="only this type (ns.Type or files.node); comma-separate several")
    limit: int | None = Field(None, ge=1, le=500, description="default 20")
    cursor: str | None = Field(None, description="opaque; from a previous page")
