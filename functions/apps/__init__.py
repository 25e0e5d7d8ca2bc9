"""Apps: installable third-party code with actions, triggers and a namespace of the graph (CONTRACT §8).

Archive intake and lifecycle in service.py (archive.py, manifest.py), actions and executions in actions.py and
executions.py, the event processor in processor.py (`events` process), the runtimes and their runner in
runtimes.py and runner.py (`apps` process), replay in replay.py. Routes in routes.py.
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings

_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OBJ = {"content": {"application/json": {"schema": {"type": "object"}}}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(op_id: str, summary: str, *, params=(), body: bool = False, ok: str = "200", errors=("401", "404")):
    op = {"operationId": op_id, "summary": summary, "parameters": list(params),
          "responses": {ok: {"description": "OK", **_OBJ}, **{code: {"description": code, **_ERR} for code in errors}}}
    if body:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
    return op


OPENAPI = {"paths": {
    "/apps/v1/apps": {
        "get": _op("listApps", "Installed apps (any user)", errors=("401",)),
        "post": {**_op("submitApp", "Install or upgrade an app from an archive or the catalog (admin)", ok="201",
                       errors=("400", "401", "403", "409", "413", "415")),
                 "requestBody": {"required": True, "content": {
                     "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                     "application/zip": {"schema": {"type": "string", "format": "binary"}},
                     "application/json": {"schema": {"type": "object",
                                                     "properties": {"catalog": {"type": "string"}}}}}}},
    },
    "/apps/v1/apps/{name}": {
        "get": _op("getApp", "One app", params=[_NAME]),
        "delete": _op("uninstallApp", "Uninstall (purge=true deletes its nodes) (admin)", ok="204",
                      params=[_NAME, {"name": "purge", "in": "query", "schema": {"type": "boolean"}}],
                      errors=("401", "403", "404")),
    },
    "/apps/v1/apps/{name}/approve": {"post": _op("approveApp", "Approve (replay: true feeds past events) (admin)",
                                                 params=[_NAME], body=True, ok="202",
                                                 errors=("401", "403", "404", "409"))},
    "/apps/v1/apps/{name}/reject": {"post": _op("rejectApp", "Reject a pending app or upgrade (admin)",
                                                params=[_NAME], errors=("401", "403", "404", "409"))},
    "/apps/v1/apps/{name}/settings": {
        "get": _op("getAppSettings", "The caller's settings for the app, defaults filled in", params=[_NAME]),
        "put": _op("putAppSettings", "Replace the caller's settings (validated by the app's schema)",
                   params=[_NAME], body=True, errors=("400", "401", "404")),
    },
    "/apps/v1/apps/{name}/replay": {"post": _op("replayApp", "Feed the app the caller's past events", ok="202",
                                                params=[_NAME], body=True)},
    "/apps/v1/replays/{id}": {"get": _op("getReplay", "Replay progress {state,total,done}", params=[_ID])},
    "/apps/v1/catalog": {"get": _op("appCatalog", "Bundled apps", errors=("401",))},
    "/apps/v1/actions/{app}/{action}": {"post": {
        **_op("callAction", "Run an action: 200 done within 30 s, else 202 (Prefer: respond-async → 202 now)",
              params=[{"name": "app", "in": "path", "required": True, "schema": {"type": "string"}},
                      {"name": "action", "in": "path", "required": True, "schema": {"type": "string"}},
                      {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                      {"name": "Prefer", "in": "header", "schema": {"type": "string"}}],
              body=True, errors=("400", "401", "403", "404", "409")),
        "responses": {"200": {"description": "done", **_OBJ}, "202": {"description": "still running", **_OBJ},
                      **{c: {"description": c, **_ERR} for c in ("400", "401", "403", "404", "409")}}}},
    "/apps/v1/executions": {"get": _op("listExecutions", "The caller's executions, newest first", params=[
        {"name": "app", "in": "query", "schema": {"type": "string"}},
        {"name": "state", "in": "query", "schema": {"type": "string"}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer"}}], errors=("400", "401"))},
    "/apps/v1/executions/{id}": {"get": _op("getExecution", "One execution", params=[_ID])},
    "/apps/v1/executions/{id}/retry": {"post": _op("retryExecution", "Run a dead execution again", ok="202",
                                                   params=[_ID], errors=("401", "404", "409"))},
}}


def create_app(settings: Settings | None = None) -> Flask:
    app = function_app(__name__, settings, name="apps")
    from functions.apps.routes import bp

    app.register_blueprint(bp)
    return app
