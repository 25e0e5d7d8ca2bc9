"""HTTP side of apps, actions, executions and replays (CONTRACT §8): parse, call the services, shape JSON."""

from __future__ import annotations

import time
from concurrent.futures import wait

import requests
from flask import Response, current_app, jsonify, request, stream_with_context

from functions.apps import actions as act
from functions.apps import executions as ex
from functions.apps import replay, store
from functions.apps.pool import ExecutionPool
from functions.apps.schemas import (
    ARCHIVE_BODY,
    JSON_OBJECT,
    AppPage,
    AppRecord,
    Approve,
    CatalogInstall,
    CatalogPage,
    Execution,
    ExecutionEnvelope,
    ExecutionPage,
    ExecutionQuery,
    Replay,
    ReplayRequest,
    ReplayStarted,
    Submitted,
    UninstallQuery,
)
from functions.apps.service import AppManager
from runtime.app import clients, json_body, page_params, settings
from runtime.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from runtime.identity import current_identity
from runtime.ids import new_id, utcnow
from runtime.schemas import Api, body, validate

api = Api("apps", import_name=__name__)
NOT_GRANTED = "not_granted: an app's token does not reach this"
SYNC_WAIT_S = 30.0
ARCHIVE_TYPES = ("application/gzip", "application/x-gzip", "application/zip", "application/x-tar+gzip",
                 "application/octet-stream", "application/x-zip-compressed")


def not_granted(message: str, details: dict | None = None) -> Forbidden:
    return Forbidden(message, code="not_granted", details=details)


def manager() -> AppManager:
    found = current_app.extensions.get("apps_manager")
    if found is None:
        found = current_app.extensions["apps_manager"] = AppManager(clients().db, settings())
    return found


def pool() -> ExecutionPool:
    found = current_app.extensions.get("apps_pool")
    if found is None:
        c = clients()
        found = current_app.extensions["apps_pool"] = ExecutionPool(
            act.Invoker(c.db, c.settings, c.keys, c.store), workers=16)
    return found


def _user_only(ident) -> None:
    """Lifecycle and settings are for people; an app's invocation token does not reach them."""
    if ident.app is not None:
        raise not_granted("apps may only call actions they were granted")


# --- lifecycle ---------------------------------------------------------------------------------------------
@api.post("/apps/v1/apps", operation_id="submitApp",
          summary="Install or upgrade an app from an archive or the catalog (admin)", body=ARCHIVE_BODY,
          extra_models=(CatalogInstall,),
          responses={201: Submitted, 400: "invalid_app (details.problems lists every problem), invalid_request",
                     403: "forbidden: not an admin", 404: "no bundled app of that name",
                     409: "app_exists: that version (or a namespace clash) is installed",
                     413: "the archive is too large", 415: "unsupported_media_type"})
def submit():
    ident = current_identity()
    _user_only(ident)
    ctype = (request.mimetype or "").lower()
    if ctype == "application/json":
        wanted = json_body()
        if not isinstance(wanted.get("catalog"), str):
            raise BadRequest('send the archive (application/gzip or application/zip) or {"catalog": NAME}',
                             code="invalid_request")
        return jsonify(manager().submit_catalog(ident, validate(CatalogInstall, wanted).catalog)), 201
    if ctype not in ARCHIVE_TYPES:
        raise ApiError("send the archive as application/gzip or application/zip", code="unsupported_media_type",
                       status=415)
    return jsonify(manager().submit(ident, request.get_data(cache=False))), 201


@api.get("/apps/v1/apps", operation_id="listApps", summary="Installed apps (any user)", responses={200: AppPage})
def list_apps():
    current_identity()
    return jsonify(manager().list())


@api.get("/apps/v1/apps/<name>", operation_id="getApp", summary="One app",
         responses={200: AppRecord, 404: "no app of that name"})
def get_app(name: str):
    current_identity()
    return jsonify(manager().get(name))


@api.post("/apps/v1/apps/<name>/approve", operation_id="approveApp",
          summary="Approve what a pending app or upgrade requests; it installs in the background (admin)",
          body=Approve, body_required=False,
          responses={202: AppRecord, 403: "forbidden: not an admin", 404: "no app of that name",
                     409: "invalid_state: nothing to approve"})
def approve(name: str):
    ident = current_identity()
    _user_only(ident)
    wanted = body(Approve) or Approve()
    return jsonify(manager().approve(ident, name, replay=wanted.replay)), 202


@api.post("/apps/v1/apps/<name>/reject", operation_id="rejectApp", summary="Reject a pending app or upgrade (admin)",
          responses={200: AppRecord, 403: "forbidden: not an admin", 404: "no app of that name",
                     409: "invalid_state: nothing to reject"})
def reject(name: str):
    ident = current_identity()
    _user_only(ident)
    return jsonify(manager().reject(ident, name))


@api.delete("/apps/v1/apps/<name>", operation_id="uninstallApp",
            summary="Uninstall at once (purge=true deletes its nodes too) (admin)", query=UninstallQuery,
            responses={204: "uninstalled", 403: "forbidden: not an admin", 404: "no app of that name"})
def uninstall(name: str):
    ident = current_identity()
    _user_only(ident)
    purge = request.args.get("purge", "false").lower() in ("1", "true", "yes")
    db = clients().db

    def on_removed(doc):
        from runtime import events

        ex.purge_app(db, name)
        events.append(db, owner=ident.user_id, type="apps.app.uninstalled", subject=name,
                      data={"name": name, "version": doc["version"], "purged": purge})

    manager().uninstall(ident, name, purge=purge, on_removed=on_removed)
    return "", 204


@api.get("/apps/v1/catalog", operation_id="appCatalog", summary="The bundled apps and their installed versions",
         responses={200: CatalogPage})
def catalog():
    current_identity()
    return jsonify(manager().catalog())


# --- per user ----------------------------------------------------------------------------------------------
@api.get("/apps/v1/apps/<name>/settings", operation_id="getAppSettings",
         summary="The caller's settings for the app, defaults filled in (shaped by the app's settings schema)",
         responses={200: ("the settings", None), 403: NOT_GRANTED, 404: "no app of that name"})
def get_settings(name: str):
    ident = current_identity()
    _user_only(ident)
    return jsonify(manager().user_settings(name, ident.user_id))


@api.put("/apps/v1/apps/<name>/settings", operation_id="putAppSettings",
         summary="Replace the caller's settings (validated by the app's settings schema)", body=JSON_OBJECT,
         responses={200: ("the settings as stored", None), 400: "invalid_settings", 403: NOT_GRANTED,
                    404: "no app of that name"})
def put_settings(name: str):
    ident = current_identity()
    _user_only(ident)
    return jsonify(manager().put_user_settings(name, ident.user_id, json_body()))


@api.post("/apps/v1/apps/<name>/replay", operation_id="replayApp", summary="Feed the app the caller's past events",
          body=ReplayRequest, body_required=False,
          responses={202: ReplayStarted, 400: "invalid_since", 403: NOT_GRANTED, 404: "no active app of that name"})
def start_replay(name: str):
    ident = current_identity()
    _user_only(ident)
    doc = store.get(clients().db, name)
    if doc is None or doc["state"] != "active":
        raise NotFound(f"no active app named {name!r}", code="not_found")
    since = replay.since_value((body(ReplayRequest) or ReplayRequest()).since)
    started = replay.start(clients().db, name, ident.user_id, since)
    return jsonify({"replay_id": started["_id"]}), 202


@api.get("/apps/v1/replays/<replay_id>", operation_id="getReplay", summary="A replay's progress",
         responses={200: Replay, 404: "no such replay"})
def get_replay(replay_id: str):
    ident = current_identity()
    return jsonify(replay.get(clients().db, replay_id, ident.user_id, admin=ident.has_scope("admin")))


# --- actions -----------------------------------------------------------------------------------------------
@api.post("/apps/v1/actions/<app>/<action>", operation_id="callAction",
          summary="Run an action: 200 when done within 30 s, else 202 (Prefer: respond-async → 202 at once)",
          body=JSON_OBJECT,
          parameters=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 200}},
                      {"name": "Prefer", "in": "header", "schema": {"type": "string"}}],
          responses={200: ("done", ExecutionEnvelope), 202: ("still running", ExecutionEnvelope),
                     400: "invalid_params", 403: "not_granted", 404: "no such action",
                     409: "app_not_active, idempotency_conflict"})
def call_action(app: str, action: str):
    ident = current_identity()
    db = clients().db
    full = f"{app}.{action}"
    if ident.app is not None and app != ident.app and full not in ((ident.grants or {}).get("actions") or []):
        raise not_granted(f"the app {ident.app!r} was not granted {full}", details={"action": full})
    params = json_body(required=False)
    if app in act.CORE_APPS:
        return _core_action(ident, full, params)
    doc = store.get(db, app)
    spec = ((doc or {}).get("manifest", {}).get("actions") or {}).get(action)
    if doc is None or spec is None:
        raise NotFound(f"no action {full}", code="not_found")
    if doc["state"] != "active":
        raise Conflict(f"{app} is {doc['state']}", code="app_not_active")
    act.check_params(spec.get("params"), params)
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (len(key) > 200 or not key.isprintable()):
        raise BadRequest("Idempotency-Key must be at most 200 printable characters", code="invalid_request")
    execution = ex.new_execution(owner=ident.user_id, app=app, action=action, params=params,
                                 depth=(ident.depth + 1) if ident.app else 0, caller_app=ident.app,
                                 idempotency_key=key)
    made = execution
    execution = ex.insert_idempotent(db, execution) if key else (db.executions.insert_one(execution) and execution)
    if execution is made:
        act.tell(pool().invoker.notify, execution)
    if execution["state"] in ex.FINAL:
        return jsonify({"execution": ex.public_json(execution)}), 200
    future = pool().submit(execution["_id"])
    if "respond-async" in request.headers.get("Prefer", ""):
        return jsonify({"execution": ex.public_json(execution)}), 202
    deadline = time.monotonic() + SYNC_WAIT_S
    wait((future,), timeout=SYNC_WAIT_S)  # past it, the execution goes on and the caller gets 202
    while True:
        current = db.executions.find_one({"_id": execution["_id"]})
        if current["state"] in ex.FINAL or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    status = 200 if current["state"] in ex.FINAL else 202
    return jsonify({"execution": ex.public_json(current)}), status


def _core_action(ident, full: str, params: dict):
    c = clients()
    if full not in act.CORE_ACTIONS_SCHEMAS:
        raise NotFound(f"no action {full}", code="not_found")
    act.check_params(act.CORE_ACTIONS_SCHEMAS[full], params)
    if full == "files.read":
        from functions.files import service as files_service

        node = files_service.content_node(c.db, ident.user_id, params["file_id"])
        size = int(node.get("size") or 0)
        body = files_service.iter_content(c.store, node, 0, size - 1) if size else iter(())
        return Response(stream_with_context(body), 200, mimetype="application/octet-stream",
                        headers={"Content-Length": str(size), "ETag": f'"{node["content_hash"]}"'})
    started = utcnow()
    result = act.core_action(c.db, c.settings, c.store, ident.user_id, full, params, identity=ident)
    app, _, action = full.partition(".")
    doc = {**ex.new_execution(owner=ident.user_id, app=app, action=action, params=params,
                              caller_app=ident.app, depth=(ident.depth + 1) if ident.app else 0),
           "state": "done", "attempts": 1, "started_at": started, "finished_at": utcnow(), "result": result,
           "next_attempt_at": None}
    c.db.executions.insert_one(doc)
    act.tell(pool().invoker.notify, doc)
    return jsonify({"execution": ex.public_json(doc)}), 200


# --- executions --------------------------------------------------------------------------------------------
@api.get("/apps/v1/executions/<execution_id>", operation_id="getExecution", summary="One execution",
         responses={200: Execution, 404: "no such execution"})
def get_execution(execution_id: str):
    ident = current_identity()
    return jsonify(ex.public_json(ex.get(clients().db, ident.user_id, execution_id)))


@api.get("/apps/v1/executions", operation_id="listExecutions", summary="The caller's executions, newest first",
         query=ExecutionQuery, responses={200: ExecutionPage, 400: "invalid_state, invalid_cursor"})
def list_executions():
    ident = current_identity()
    cursor, limit = page_params(default_limit=50, max_limit=500)
    return jsonify(ex.list_for(clients().db, ident.user_id, app=request.args.get("app") or None,
                               state=request.args.get("state") or None, cursor=cursor, limit=limit))


@api.post("/apps/v1/executions/<execution_id>/retry", operation_id="retryExecution",
          summary="Run a dead execution again", responses={202: ExecutionEnvelope, 404: "no such execution",
                                                          409: "invalid_state: only a dead execution is retried"})
def retry_execution(execution_id: str):
    ident = current_identity()
    doc = ex.retry_dead(clients().db, ident.user_id, execution_id)
    act.tell(pool().invoker.notify, doc)
    pool().submit(doc["_id"])
    return jsonify({"execution": ex.public_json(doc)}), 202


# --- web UI ------------------------------------------------------------------------------------------------
HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "content-length", "host", "cookie", "authorization",
               "x-pcloud-identity", "x-csrf-token"}


@api.blueprint.route("/apps/<name>/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
@api.blueprint.route("/apps/<name>/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
def web(name: str, rest: str):
    """The app's UI, same-origin: the SSO cookie becomes a short invocation-style token the app can verify."""
    ident = current_identity()
    if name == "v1":
        raise NotFound("no such endpoint", code="not_found")
    doc = store.get(clients().db, name)
    web_path = ((doc or {}).get("manifest", {}).get("web") or {}).get("path")
    if doc is None or doc["state"] != "active" or web_path is None or not doc.get("endpoint"):
        raise NotFound(f"no web UI for {name!r}", code="not_found")
    if ident.app is not None:
        raise not_granted("an app token does not open another app's UI")
    c = clients()
    grants = act.grants_of(doc)
    from runtime.tokens import issue_invocation_token

    token = issue_invocation_token(c.keys, c.settings, user_id=ident.user_id, app=name,
                                   scopes=act.scopes_for(grants), grants=grants, execution_id=f"web-{new_id()}",
                                   depth=0, deadline=time.time() + 300)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    headers.update({"Authorization": f"Bearer {token}", "X-Forwarded-Prefix": f"/apps/{name}",
                    "X-PCloud-User": ident.user_id})
    url = doc["endpoint"].rstrip("/") + "/" + (web_path.strip("/") + "/" + rest).lstrip("/")
    try:
        upstream = requests.request(request.method, url, params=request.args, data=request.get_data(),
                                    headers=headers, timeout=(5, 60), allow_redirects=False, stream=True)
    except requests.RequestException as exc:
        raise ApiError(f"the app {name!r} did not answer: {type(exc).__name__}", code="app_unavailable",
                       status=502) from None
    out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS | {"set-cookie"}]
    body = upstream.raw.stream(64 * 1024, decode_content=False)
    return Response(stream_with_context(body), upstream.status_code, out_headers)

