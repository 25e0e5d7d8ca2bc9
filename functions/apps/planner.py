"""From an event to its executions: which active apps' triggers fire, for whom, with which params.

Shared by the live processor and replay, so a replayed event makes exactly the execution the live path would
have made — and the unique (trigger, event) index turns the second of the two into a no-op.
"""

from __future__ import annotations

from functions.apps import executions as ex
from functions.apps import manifest as mf
from functions.apps import store, triggers


class Planner:
    """Caches per batch: the active apps, each user's settings and profile."""

    def __init__(self, db, apps: list[dict] | None = None):
        self.db = db
        self.apps = apps if apps is not None else store.all_apps(db, states=("active", "installing"))
        self._settings: dict[tuple[str, str], dict] = {}
        self._users: dict[str, dict] = {}

    def settings(self, app_doc: dict, owner: str) -> dict:
        key = (app_doc["_id"], owner)
        if key not in self._settings:
            found = store.user_doc(self.db, app_doc["_id"], owner) or {}
            self._settings[key] = mf.settings_defaults(app_doc["manifest"].get("settings"), found.get("settings"))
        return self._settings[key]

    def user(self, owner: str) -> dict:
        if owner not in self._users:
            doc = self.db.users.find_one({"_id": owner}, {"name": 1, "email": 1}) or {}
            self._users[owner] = {"id": owner, "name": doc.get("name"), "email": doc.get("email")}
        return self._users[owner]

    def plan(self, event: dict, only_app: str | None = None) -> list[dict]:
        """New execution documents for `event` (the API shape: id, type, owner, data, cause…)."""
        docs = []
        for app_doc in self.apps:
            if only_app is not None and app_doc["_id"] != only_app:
                continue
            fired = triggers.matches(app_doc, event)
            if not fired:
                continue
            user_settings = self.settings(app_doc, event["owner"])
            if user_settings.get("enabled") is False:
                continue
            depth = triggers.depth_of(event)
            context = {"event": event, "settings": user_settings, "user": self.user(event["owner"])}
            for trigger in fired:
                app, action = triggers.target(app_doc["_id"], trigger["run"])
                doc = ex.new_execution(owner=event["owner"], app=app, action=action,
                                       params=triggers.render(trigger.get("params") or {}, context), depth=depth,
                                       trigger=trigger["name"], trigger_app=app_doc["_id"], event_id=event["id"],
                                       retry={**mf.DEFAULT_RETRY, **(trigger.get("retry") or {})},
                                       caller_app=app_doc["_id"] if app != app_doc["_id"] else None)
                if depth > triggers.MAX_DEPTH:
                    doc.update(state="dead", next_attempt_at=None,
                               error=f"causal chain deeper than {triggers.MAX_DEPTH}: stopped (loop guard)")
                docs.append(doc)
        return docs

    def init_executions(self, app_doc: dict, owner: str) -> list[dict]:
        """The app's `init` calls for one user (run once per app version and user)."""
        context = {"event": {}, "settings": self.settings(app_doc, owner), "user": self.user(owner)}
        docs = []
        for index, call in enumerate(app_doc["manifest"].get("init") or []):
            app, action = triggers.target(app_doc["_id"], call["action"])
            docs.append(ex.new_execution(owner=owner, app=app, action=action,
                                         params=triggers.render(call.get("params") or {}, context),
                                         trigger=f"init-{index}", trigger_app=app_doc["_id"],
                                         retry=mf.DEFAULT_RETRY,
                                         caller_app=app_doc["_id"] if app != app_doc["_id"] else None))
        return docs
