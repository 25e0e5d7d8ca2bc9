"""Models of GET /events/v1 (CONTRACT §8) for /openapi.json; the query is checked in service.py (clear codes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from runtime.schemas import Query


class EventCause(BaseModel):
    """The app invocation that made the change."""

    app: str
    execution_id: str
    depth: int


class Event(BaseModel):
    """One entry of the caller's event log."""

    id: str
    seq: int = Field(description="increasing per owner; page with after=SEQ")
    type: str = Field(description="graph.node.created|updated|deleted, files.node.created|updated|trashed|"
                                  "restored|purged, devices.device.paired|unpaired|online|offline, "
                                  "apps.app.installed|uninstalled")
    subject: str = Field(description="the node's or device's id")
    node_type: str | None = Field(None, description="ns.Type of a graph node")
    owner: str
    time: datetime
    state: Literal["new", "in_progress", "done"]
    cause: EventCause | None = None
    data: dict[str, Any] = Field(description="graph: node, changed, search; files: node (§3) and path; "
                                             "devices: device")


class EventPage(BaseModel):
    """The caller's events, oldest first."""

    items: list[Event]
    next_cursor: str | None = Field(description="the last seq of a full page; null at the end")


class EventQuery(Query):
    after: int | None = Field(None, ge=0, description="only events with a greater seq")
    type: str | None = Field(None, description="type prefix in whole dotted segments: files.node, graph.node.created")
    limit: int | None = Field(None, ge=1, le=500, description="default 100")
