"""The app runner (`apps` in the Procfile, one per box): installs approved apps and keeps their runtimes up.

Each tick it
* takes an `installing` app (leased, so a second runner or a restarted one never does it twice at once):
  prepares its runtime (venv + requirements, progress in the app's `progress`), extends the graph schema with
  the app's namespace, starts the runtime, waits until it answers, then turns it `active` (or `failed` with
  the reason, pip's included), records `apps.app.installed`, starts the replay asked for at approval and runs the
  app's init for every user;
* supervises active python runtimes: a process that died or stopped answering is restarted (with a growing
  pause, so a crash-looping app does not eat the box); runtimes of uninstalled apps and old versions are stopped.

    python -m functions.apps.runner
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from functions.apps import replay, store
from functions.apps.actions import tell
from functions.apps.planner import Planner
from functions.apps.runtimes import RuntimeFailed, pid_alive, runtime_for, stop_pid
from functions.apps.service import graph_registry
from runtime.clients import clients_for
from runtime.ids import new_id, utcnow

log = logging.getLogger(__name__)
INSTALL_LEASE_S = 900
START_WAIT_S = 30.0
UNHEALTHY_LIMIT = 3


class Runner:
    def __init__(self, db, settings):
        self.db = db
        self.settings = settings
        self.holder = new_id()
        self.stop = threading.Event()
        self.notify = clients_for(settings).live
        self._procs: dict[str, dict] = {}  # app name -> {"pid", "version", "endpoint", "failures", "next_start"}

    def runtime(self, app: dict):
        return runtime_for(app, self.settings.apps_dir, self.settings.app_api_url)

    # --- install -----------------------------------------------------------------------------------------
    def install_one(self) -> bool:
        now = utcnow()
        doc = self.db.apps.find_one_and_update(
            {"state": "installing", "$or": [{"install_lease": None}, {"install_lease": {"$lt": now}},
                                            {"install_lease": {"$exists": False}}]},
            {"$set": {"install_lease": now + timedelta(seconds=INSTALL_LEASE_S), "install_holder": self.holder}})
        if doc is None:
            return False
        name = doc["_id"]

        def progress(step: str) -> None:
            store.update(self.db, name, {"progress": {"step": step}}, expect_state="installing")

        runtime = self.runtime(doc)
        try:
            runtime.prepare(doc, progress)
            sdl = _sdl(doc)
            if sdl is not None:
                progress("extending the schema")
                registry = graph_registry()
                try:
                    registry.install_namespace(self.db, doc["namespace"], sdl, name,
                                               extend_grants=_extend_grants(doc))
                except registry.SchemaProblems as exc:
                    raise RuntimeFailed("schema: " + "; ".join(exc.problems)) from None
            progress("starting the runtime")
            endpoint, pid = self._start(doc, runtime)
        except RuntimeFailed as exc:
            store.update(self.db, name, {"state": "failed", "error": str(exc), "progress": None,
                                         "install_lease": None}, expect_state="installing")
            log.warning("app %s failed to install: %s", name, exc)
            return True
        old = self._procs.get(name)
        self._procs[name] = {"pid": pid, "version": doc["version"], "endpoint": endpoint, "failures": 0,
                             "next_start": 0.0, "unhealthy": 0}
        active = store.update(self.db, name, {"state": "active", "endpoint": endpoint, "pid": pid, "progress": None,
                                              "install_lease": None, "activated_at": utcnow()},
                              expect_state="installing")
        if old and old.get("pid") != pid:
            stop_pid(old.get("pid"))
        if active is None:  # uninstalled meanwhile
            stop_pid(pid)
            return True
        self._after_activation(active)
        return True

    def _start(self, doc: dict, runtime) -> tuple[str, int | None]:
        endpoint, pid = runtime.start(doc)
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            if runtime.healthy(endpoint):
                return endpoint, pid
            if pid and not pid_alive(pid):
                break
            time.sleep(0.2)
        stop_pid(pid)
        tail = runtime.log_tail(doc) if hasattr(runtime, "log_tail") else ""
        raise RuntimeFailed(f"the runtime did not answer at {endpoint} within {START_WAIT_S:g} s"
                            + (f": {tail}" if tail else ""))

    def _after_activation(self, doc: dict) -> None:
        from runtime import events

        owner = doc.get("approved_by") or doc.get("submitted_by")
        if owner:
            events.append(self.db, owner=owner, type="apps.app.installed", subject=doc["_id"],
                          data={"name": doc["_id"], "version": doc["version"], "namespace": doc["namespace"]})
        if doc.get("replay_on_approve"):
            started = replay.start(self.db, doc["_id"], None)
            store.update(self.db, doc["_id"], {"replay_on_approve": False, "replay_id": started["_id"]})
        if doc["manifest"].get("init"):
            planner = Planner(self.db, apps=[doc])
            for user in self.db.users.find({}, {"_id": 1}):
                if store.claim_init(self.db, doc["_id"], doc["version"], user["_id"]):
                    for execution in planner.init_executions(doc, user["_id"]):
                        self.db.executions.insert_one(execution)
                        tell(self.notify, execution)

    # --- supervise ---------------------------------------------------------------------------------------
    def supervise(self) -> None:
        active = {d["_id"]: d for d in store.all_apps(self.db, states=("active",))}
        for name in list(self._procs):
            doc = active.get(name)
            if doc is None or doc.get("version") != self._procs[name]["version"]:
                if doc is None or doc["state"] != "installing":
                    stop_pid(self._procs.pop(name)["pid"])
        for name, doc in active.items():
            if "python" not in doc["manifest"]["runtime"]:
                continue
            proc = self._procs.get(name)
            if proc is None:
                if _our_gunicorn(doc.get("pid"), doc["dir"]):
                    stop_pid(doc["pid"])  # left by a runner that died: this one starts its own
                proc = self._procs[name] = {"pid": None, "version": doc["version"], "endpoint": None,
                                            "failures": 0, "next_start": 0.0, "unhealthy": 0}
            runtime = self.runtime(doc)
            if proc["pid"] and pid_alive(proc["pid"]):
                if runtime.healthy(proc["endpoint"]):
                    proc["unhealthy"] = 0
                    continue
                proc["unhealthy"] += 1
                if proc["unhealthy"] < UNHEALTHY_LIMIT:
                    continue
                log.warning("app %s stopped answering; restarting it", name)
                stop_pid(proc["pid"])
            if time.monotonic() < proc["next_start"]:
                continue
            try:
                endpoint, pid = self._start(doc, runtime)
            except RuntimeFailed as exc:
                proc["failures"] += 1
                proc["next_start"] = time.monotonic() + min(2 ** proc["failures"], 60)
                log.warning("app %s did not restart: %s", name, exc)
                store.update(self.db, name, {"endpoint": None, "runtime_error": str(exc)}, expect_state="active")
                continue
            proc.update(pid=pid, endpoint=endpoint, unhealthy=0)
            store.update(self.db, name, {"endpoint": endpoint, "pid": pid, "runtime_error": None},
                         expect_state="active")

    def tick(self) -> None:
        while self.install_one():
            pass
        self.supervise()

    def run(self, interval: float = 0.5) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - a database hiccup must not leave the apps unsupervised
                    log.exception("runner tick failed")
                self.stop.wait(interval)
        finally:
            for proc in self._procs.values():
                stop_pid(proc["pid"])

    def stop_all(self) -> None:
        for name in list(self._procs):
            stop_pid(self._procs.pop(name)["pid"])


def _our_gunicorn(pid: int | None, app_dir: str) -> bool:
    """The pid still runs this app's gunicorn (not a stranger that reused the number)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().decode(errors="replace")
    except OSError:
        return False
    return "gunicorn" in cmdline and app_dir in cmdline


def _sdl(doc: dict) -> str | None:
    schema = doc["manifest"].get("schema")
    if not schema:
        return None
    from pathlib import Path

    return (Path(doc["dir"]) / schema).read_text()


def _extend_grants(doc: dict) -> set[str]:
    types = (doc.get("granted") or {}).get("types") or {}
    return {t for t, kinds in types.items() if "extend" in kinds}


def main() -> None:
    from runtime.clients import process_clients
    from runtime.daemon import stop_on_signals
    from runtime.logs import configure_logging

    clients = process_clients()
    configure_logging(clients.settings.log_level)
    clients.ensure_indexes()
    runner = Runner(clients.db, clients.settings)
    stop_on_signals(runner.stop)
    log.info("app runner running")
    runner.run()


if __name__ == "__main__":
    main()
