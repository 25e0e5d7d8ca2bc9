"""Request and response models of /apps/v1 (CONTRACT §8): the one source of its OpenAPI document.

Bodies whose shape an app declares (its settings schema, an action's params) are documented as JSON objects and
checked by the app's own JSON Schema in the services; an archive is binary and checked by the intake.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.schemas import Body, Query, omittable

ExecutionState = Literal["new", "in_progress", "done", "failed", "dead"]


def _app_state():
    return Field(description="pending_approval, installing, active, failed or rejected (more may come)")


def _execution_state():
    return Field(description="new, in_progress, done, failed or dead (more may come)")

JSON_OBJECT = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
ARCHIVE_BODY = {"required": True, "content": {
    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"$ref": "#/components/schemas/CatalogInstall"}}}}


class CatalogInstall(Body):
    """Install (or upgrade to) a bundled app by name instead of sending its archive."""

    catalog: str = Field(min_length=1, max_length=100, examples=["face-detector"])


class Approve(Body):
    error_codes = {"replay": "invalid_request"}
    replay: bool = Field(False, description="true: once active, the app is fed every user's past events")


class ReplayRequest(Body):
    error_codes = {"since": "invalid_since"}
    since: str | None = Field(None, description="ISO 8601 date-time; absent or null: the whole log",
                              examples=["2024-01-01T00:00:00Z"])


class _Open(BaseModel):
    """Responses may grow fields; clients must ignore the ones they do not know."""

    model_config = ConfigDict(extra="allow")


class Submitted(_Open):
    """An archive accepted and waiting for an admin's approval of what it requests."""

    name: str
    version: str
    state: str = _app_state()
    requests: dict[str, Any] = Field(description="what the app asks to touch (the manifest's permissions)")


class Upgrade(_Open):
    version: str
    state: str = _app_state()
    requests: dict[str, Any]


class AppRecord(_Open):
    """An installed (or pending) app."""

    name: str
    version: str
    title: str | None
    description: str
    state: str = _app_state()
    namespace: str | None
    requests: dict[str, Any]
    granted: dict[str, Any] | None = Field(description="what the admin approved; null until approved")
    error: Any = omittable(description="why the install failed")
    progress: dict[str, Any] = omittable(description="install step {step, …}")
    upgrade: Upgrade = omittable(description="an upgrade waiting for approval")
    settings_schema: dict[str, Any] = omittable(description="JSON Schema of each user's settings (`enabled` "
                                                        "implied): what a settings form is built from")
    replay_id: str = omittable(description="the replay of every user's past events started at approval "
                                           "(progress: GET /apps/v1/replays/{id}, admins)")
    created_at: str | None = Field(description="ISO 8601 UTC")
    updated_at: str | None = Field(description="ISO 8601 UTC")


class AppPage(_Open):
    items: list[AppRecord]
    next_cursor: str | None


class CatalogEntry(_Open):
    name: str
    version: str | None
    title: str | None
    description: str
    installed: str | None = Field(description="the installed version, null when not installed")


class CatalogPage(_Open):
    items: list[CatalogEntry]


class ReplayStarted(_Open):
    replay_id: str


class Replay(_Open):
    """A replay's progress."""

    id: str
    app: str
    state: str
    total: int
    done: int


class Execution(_Open):
    """One run of an action (called, or started by a trigger for an event)."""

    id: str
    app: str
    action: str
    state: str = _execution_state()
    attempts: int
    created_at: str | None
    trigger: str = omittable()
    event_id: str = omittable()
    started_at: str = omittable()
    finished_at: str = omittable()
    next_attempt_at: str = omittable()
    result: Any = omittable(description="the action's answer once done")
    error: Any = omittable(description="why the last attempt failed")


class ExecutionEnvelope(_Open):
    execution: Execution


class ExecutionPage(_Open):
    items: list[Execution]
    next_cursor: str | None


class ExecutionQuery(Query):
    app: str | None = Field(None, max_length=100)
    state: ExecutionState | None = None
    cursor: str | None = Field(None, max_length=200)
    limit: int | None = Field(None, ge=1, le=500)


class UninstallQuery(Query):
    purge: bool = Field(False, description="true: the app's nodes are deleted too")
