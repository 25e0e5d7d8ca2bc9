"""Running one execution: the invocation token, the call to the runtime, and what its answer means (§8).

PCloud calls `POST <runtime><path>` with the execution's body, `Idempotency-Key: <execution id>` and a
fresh invocation token limited to the owner-approved grants. 200 → done; 4xx other than 408/429 → dead
at once; 5xx, 408, 429, a timeout or a refused connection → failed (retried with the trigger's backoff),
dead when the attempts are used up. Core actions (`files.*`, `graph.query`) are served here, in-process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import requests
from jsonschema import Draft202012Validator

from functions.apps import executions as ex
from functions.apps import manifest as mf
from functions.apps import store
from runtime.clients import clients_for
from runtime.errors import ApiError, BadRequest, NotFound

log = logging.getLogger(__name__)
LEASE_GRACE_S = 15.0
MAX_DEPTH = 8
CORE_APPS = ("files", "graph")
CORE_ACTIONS_SCHEMAS = {
    "files.read": {"type": "object", "required": ["file_id"], "additionalProperties": False,
                   "properties": {"file_id": {"type": "string", "minLength": 1}}},
    "files.ensure-folder": {"type": "object", "required": ["path"], "additionalProperties": False,
                            "properties": {"path": {"type": "string", "pattern": "^/"}}},
    "graph.query": {"type": "object", "required": ["query"], "additionalProperties": False,
                    "properties": {"query": {"type": "string"}, "variables": {"type": "object"}}},
}


@dataclass
class Outcome:
    state: str  # done | dead | retry
    result: object = None
    error: str | None = None


def classify(status: int, body: bytes, content_type: str | None) -> Outcome:
    if 200 <= status < 300:
        if status == 204 or not body:
            return Outcome("done", None)
        try:
            import json

            return Outcome("done", json.loads(body))
        except ValueError:
            return Outcome("retry", error=f"answer {status} is not JSON: {body[:200]!r}")
    snippet = body[:500].decode("utf-8", "replace")
    if 400 <= status < 500 and status not in (408, 429):
        return Outcome("dead", error=f"the app answered {status}: {snippet}")
    return Outcome("retry", error=f"the app answered {status}: {snippet}")


def scopes_for(grants: dict) -> list[str]:
    """Scopes of an app's invocation tokens: its graph (own namespace) and actions API, plus what files grant."""
    scopes = ["graph.read", "graph.write", "apps"]
    actions = set((grants or {}).get("actions") or [])
    if "files.read" in actions:
        scopes.append("files.read")
    if "files.ensure-folder" in actions:
        scopes.append("files.write")
    return scopes


def grants_of(doc: dict) -> dict:
    granted = doc.get("granted") or {}
    return {"actions": list(granted.get("actions") or []), "types": dict(granted.get("types") or {})}


def check_params(schema: dict | None, params) -> None:
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object", code="invalid_params")
    if schema:
        problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in Draft202012Validator(schema).iter_errors(params)]
        if problems:
            raise BadRequest("params do not match the action's schema", code="invalid_params",
                             details={"problems": problems})


class Invoker:
    """Claims and runs executions. One per process; safe to use from many threads."""

    def __init__(self, db, settings, keys, store_=None, holder: str | None = None, http=None, notify=None):
        self.db = db
        self.notify = notify if notify is not None else clients_for(settings).live
        self.settings = settings
        self.keys = keys
        self.blob_store = store_
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.http = http or requests.Session()

    # --- one execution -----------------------------------------------------------------------------------
    def run(self, execution_id: str, event: dict | None = None) -> dict | None:
        """Claim, call, record. None when it was not ours to run (leased elsewhere, not due, busy)."""
        head = self.db.executions.find_one({"_id": execution_id}, {"app": 1, "action": 1})
        if head is None:
            return None
        app_doc = store.get(self.db, head["app"]) if head["app"] not in CORE_APPS else None
        if head["app"] not in CORE_APPS and (app_doc is None or app_doc["state"] != "active"):
            return None  # installing: waits; uninstalled: ex.purge_app ends it
        spec = self._action_spec(app_doc, head["action"])
        timeout = float(spec.get("timeout_s") or 30) if spec else 30.0
        lease = timeout + LEASE_GRACE_S
        slot = None
        if app_doc is not None:
            slot = ex.take_slot(self.db, head["app"], head["action"], int(spec.get("concurrency") or 1),
                                self.holder, lease)
            if slot is None:
                return None
        try:
            doc = ex.claim(self.db, execution_id, self.holder, lease)
            if doc is None:
                return None
            self.tell(doc)
            if doc.get("depth", 0) > MAX_DEPTH:
                return self.tell(ex.finish(self.db, doc, self.holder, "dead",
                                           error=f"causal chain deeper than {MAX_DEPTH}: stopped (loop guard)"))
            outcome = self._attempt(doc, app_doc, spec, timeout, event)
            return self.tell(ex.finish(self.db, doc, self.holder, "done" if outcome.state == "done"
                                       else outcome.state, result=outcome.result, error=outcome.error))
        finally:
            if slot is not None:
                ex.release_slot(self.db, slot, self.holder)

    def tell(self, doc: dict | None) -> dict | None:
        """The owner's open pages learn the execution's new state (a live notice: best effort, never raises)."""
        tell(self.notify, doc)
        return doc

    @staticmethod
    def _action_spec(app_doc: dict | None, action: str) -> dict:
        if app_doc is None:
            return {"timeout_s": 30, "concurrency": 8}
        return (app_doc["manifest"].get("actions") or {}).get(action) or {}

    def _attempt(self, doc: dict, app_doc: dict | None, spec: dict, timeout: float, event: dict | None) -> Outcome:
        if app_doc is None:
            return self._core(doc)
        if not spec:
            return Outcome("dead", error=f"the app has no action {doc['action']!r} (any more)")
        endpoint = app_doc.get("endpoint")
        if not endpoint:
            return Outcome("retry", error="the app's runtime is not running")
        token = self.invocation_token(doc, app_doc, timeout)
        body = {"execution_id": doc["_id"], "action": doc["action"], "params": doc.get("params") or {},
                "user": self.user_json(doc["owner"]),
                "settings": mf.settings_defaults(app_doc["manifest"].get("settings"),
                                                 (store.user_doc(self.db, app_doc["_id"], doc["owner"]) or {})
                                                 .get("settings")),
                "api_url": self.settings.app_api_url}
        if doc.get("event_id"):
            body["event"] = event if event is not None else self.event_json(doc["event_id"])
        try:
            resp = self.http.post(endpoint.rstrip("/") + spec["path"], json=body, timeout=(5.0, timeout),
                                  headers={"Idempotency-Key": doc["_id"], "Authorization": f"Bearer {token}"})
        except requests.Timeout:
            return Outcome("retry", error=f"the app did not answer within {timeout:g} s")
        except requests.ConnectionError as exc:
            return Outcome("retry", error=f"cannot reach the app: {type(exc).__name__}")
        except requests.RequestException as exc:
            return Outcome("retry", error=f"calling the app failed: {exc}")
        return classify(resp.status_code, resp.content, resp.headers.get("Content-Type"))

    def invocation_token(self, doc: dict, app_doc: dict, timeout: float) -> str:
        from runtime.tokens import issue_invocation_token

        grants = grants_of(app_doc)
        deadline = time.time() + min(timeout + LEASE_GRACE_S, 900)
        return issue_invocation_token(self.keys, self.settings, user_id=doc["owner"], app=app_doc["_id"],
                                      scopes=scopes_for(grants), grants=grants, execution_id=doc["_id"],
                                      depth=int(doc.get("depth") or 0), deadline=deadline)

    def user_json(self, owner: str) -> dict:
        user = self.db.users.find_one({"_id": owner}, {"name": 1, "email": 1}) or {}
        return {"id": owner, "name": user.get("name"), "email": user.get("email")}

    def event_json(self, event_id: str) -> dict | None:
        from runtime import events

        return events.get_event(self.db, event_id)

    # --- core actions ------------------------------------------------------------------------------------
    def _core(self, doc: dict) -> Outcome:
        """A core action a trigger or init asked for runs as the asking app would: its grants, its depth."""
        from runtime.identity import Identity

        caller = store.get(self.db, doc["caller_app"]) if doc.get("caller_app") else None
        identity = None
        if caller is not None:
            grants = grants_of(caller)
            identity = Identity(user_id=doc["owner"], client_id=f"app:{caller['_id']}",
                                scopes=tuple(scopes_for(grants)), app=caller["_id"], grants=grants,
                                execution_id=doc["_id"], depth=int(doc.get("depth") or 0))
        try:
            return Outcome("done", core_action(self.db, self.settings, self.blob_store, doc["owner"],
                                               f"{doc['app']}.{doc['action']}", doc.get("params") or {},
                                               identity=identity))
        except ApiError as err:
            return Outcome("dead", error=f"{err.code}: {err.message}")


def tell(notify, doc: dict | None) -> None:
    """Publish `doc`'s state as a live notice through `notify(owner, type, data)`; errors are only logged."""
    if doc is None or notify is None:
        return
    try:
        notify(doc["owner"], *ex.notice(doc))
    except Exception as exc:  # noqa: BLE001 - a live notice is best effort; the execution record is the truth
        log.warning("live notice for execution %s failed: %s", doc.get("_id"), exc)


def core_action(db, settings, blob_store, owner: str, name: str, params: dict, identity=None):
    """`files.ensure-folder` → the folder node; `files.read` → {size, content_hash} (the bytes go over HTTP)."""
    from functions.files import service as files

    if name == "files.ensure-folder":
        path = params.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise BadRequest("path must be an absolute folder path like /Camera", code="invalid_params")
        return ensure_folder(db, owner, path)
    if name == "files.read":
        node = files.get_node(db, owner, str(params.get("file_id") or ""))
        if node["kind"] != "file":
            raise BadRequest("file_id names a folder", code="invalid_params")
        return {"id": node["_id"], "size": node.get("size"), "content_hash": node.get("content_hash")}
    if name == "graph.query":
        if identity is None:
            raise BadRequest("graph.query runs on behalf of a caller", code="invalid_params")
        from functions.graph import service as graph

        return graph.run(db, db.client, identity, {"query": params.get("query"),
                                                   "variables": params.get("variables") or {}})
    raise NotFound(f"no core action {name!r}", code="not_found")


def ensure_folder(db, owner: str, path: str) -> dict:
    """Every folder of `path` (created when missing), the last one's node."""
    from functions.files import service as files
    from functions.files.service import node_json
    from runtime.errors import Conflict

    node = files.get_root(db, owner)
    for name in [p for p in path.split("/") if p]:
        found = _child_named(db, owner, node["_id"], name)
        if found is None:
            try:
                found = files.create_folder(db, db.client, owner, node["_id"], name)
            except Conflict:  # created meanwhile by a concurrent init
                found = _child_named(db, owner, node["_id"], name)
                if found is None:
                    raise
        if found["kind"] != "folder":
            raise BadRequest(f"{name!r} in {path!r} is a file", code="invalid_params")
        node = found
    return node_json(node)


def _child_named(db, owner: str, parent_id: str, name: str) -> dict | None:
    from functions.files import service as files
    from functions.files.service import name_key

    key, cursor = name_key(name), None
    while True:
        docs, cursor = files.list_children(db, owner, parent_id, cursor=cursor, limit=500)
        for doc in docs:
            if doc["name_key"] == key:
                return doc
        if cursor is None or (docs and docs[-1]["name_key"] > key):
            return None
