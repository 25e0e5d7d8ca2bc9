"""The app manager: archive intake, lifecycle, catalog and per-user settings (CONTRACT §8). No Flask here.

Intake validates everything in memory first; only a good archive is written (under
`PCLOUD_DATA_DIR/apps/<name>/<version>/`) and recorded. Approval hands the app to the runner
(`functions.apps.runner`), which extends the schema, prepares and starts the runtime and turns it `active`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from jsonschema import Draft202012Validator

from functions.apps import archive, store
from functions.apps import manifest as mf
from runtime.errors import BadRequest, Conflict, Forbidden, NotFound
from runtime.ids import utcnow

log = logging.getLogger(__name__)


def graph_registry():
    """The knowledge graph's schema registry (functions/graph/registry.py), imported when first needed."""
    from functions.graph import registry

    return registry


def invalid_app(problems: list[str]) -> BadRequest:
    return BadRequest(f"the app archive has {len(problems)} problem(s)", code="invalid_app",
                      details={"problems": problems})


def require_admin(identity) -> None:
    if identity.app is not None or not identity.has_scope("admin"):
        raise Forbidden("only an admin may do this", code="forbidden")


def known_catalog(catalog_dir: Path) -> dict[str, Path]:
    """Bundled apps: every `apps/<name>/` directory with a `pcloud-app.yaml`."""
    found = {}
    if catalog_dir.is_dir():
        for child in sorted(catalog_dir.iterdir()):
            if (child / mf.MANIFEST_FILE).is_file():
                found[child.name] = child
    return found


class AppManager:
    def __init__(self, db, settings, catalog_dir: Path | None = None):
        self.db = db
        self.settings = settings
        self.catalog_dir = catalog_dir or Path(__file__).resolve().parents[2] / "apps"

    # --- intake ------------------------------------------------------------------------------------------
    def validate(self, data: bytes) -> tuple[dict, dict[str, bytes], str | None]:
        """(manifest, files, sdl) of a good archive, or BadRequest invalid_app with every problem."""
        limit = self.settings.app_max_bytes
        if len(data) > limit:
            raise invalid_app([f"archive is {len(data)} bytes, over the limit of {limit}"])
        kind = archive.sniff_kind(data)
        if kind is None:
            raise invalid_app(["archive is neither a .tar.gz nor a .zip"])
        unpacked = archive.unpack(data, kind, max_unpacked=4 * limit)
        problems = list(unpacked.problems)
        files = unpacked.files
        raw = files.get(mf.MANIFEST_FILE)
        if raw is None:
            problems.append(f"{mf.MANIFEST_FILE} is missing at the archive's root")
            raise invalid_app(problems)
        manifest, yaml_problems = mf.parse_yaml(raw)
        if manifest is None:
            raise invalid_app(problems + yaml_problems)
        public_actions, known_types = self._installed_refs(exclude=manifest.get("name"))
        problems += mf.check_manifest(manifest, files, max_action_seconds=self.settings.action_max_seconds,
                                      public_actions=public_actions, known_types=known_types)
        sdl = None
        namespace = manifest.get("namespace")
        if isinstance(manifest.get("schema"), str) and manifest["schema"] in files:
            try:
                sdl = files[manifest["schema"]].decode("utf-8")
            except UnicodeDecodeError:
                sdl = None
        if isinstance(namespace, str) and isinstance(manifest.get("name"), str):
            owner = store.namespace_owner(self.db, namespace)
            if owner is not None and owner != manifest["name"]:
                problems.append(f"namespace: {namespace!r} belongs to the app {owner!r}")
            if sdl is not None and not any(p.startswith("namespace:") for p in problems):
                for problem in graph_registry().check_namespace(self.db, namespace, sdl, manifest["name"],
                                                                extend_grants=_extend_grants(manifest)):
                    problems.append(f"schema: {problem}")
        if problems:
            raise invalid_app(problems)
        return manifest, files, sdl

    def _installed_refs(self, exclude: str | None) -> tuple[dict[str, set[str]], set[str]]:
        public_actions: dict[str, set[str]] = {}
        for doc in store.all_apps(self.db, states=("active", "installing")):
            if doc["_id"] == exclude:
                continue
            actions = doc["manifest"].get("actions") or {}
            public_actions[doc["_id"]] = {a for a, spec in actions.items() if spec.get("public")}
        registry = graph_registry()
        types = set(registry.merge(registry.namespaces(self.db))["types"])
        return public_actions, types

    def submit(self, identity, data: bytes) -> dict:
        require_admin(identity)
        manifest, files, sdl = self.validate(data)
        name, version = manifest["name"], manifest["version"]
        requests = mf.requests_of(manifest, sdl)
        existing = store.get(self.db, name)
        now = utcnow()
        if existing is not None and existing["state"] in store.LIVE:
            if mf.version_key(version) <= mf.version_key(existing["version"]):
                raise Conflict(f"{name} {existing['version']} is installed; send a newer version to upgrade",
                               code="app_exists", details={"installed": existing["version"]})
            problem = self._upgrade_problem(existing, manifest, sdl)
            if problem:
                raise invalid_app(problem)
            directory = self._write_files(name, version, files)
            store.update(self.db, name, {"upgrade": {"version": version, "manifest": manifest, "requests": requests,
                                                     "dir": str(directory), "submitted_at": now}})
            return {"name": name, "version": version, "state": "pending_approval", "requests": requests}
        if existing is not None and existing["state"] == "pending_approval" and \
                mf.version_key(version) <= mf.version_key(existing["version"]):
            raise Conflict(f"{name} {existing['version']} is already waiting for approval", code="app_exists",
                           details={"installed": existing["version"]})
        directory = self._write_files(name, version, files)
        if existing is not None and existing.get("dir") and existing["dir"] != str(directory):
            shutil.rmtree(existing["dir"], ignore_errors=True)
        store.replace(self.db, {
            "_id": name, "version": version, "title": manifest["title"],
            "description": manifest.get("description", ""), "namespace": manifest["namespace"],
            "manifest": manifest, "requests": requests, "granted": None, "state": "pending_approval",
            "error": None, "progress": None, "dir": str(directory), "endpoint": None,
            "submitted_by": identity.user_id, "created_at": now, "updated_at": now})
        return {"name": name, "version": version, "state": "pending_approval", "requests": requests}

    def _upgrade_problem(self, existing: dict, manifest: dict, sdl: str | None) -> list[str]:
        problems = []
        if manifest["namespace"] != existing["namespace"]:
            problems.append(f"namespace: an upgrade keeps the namespace {existing['namespace']!r}")
        old_types = set(existing["requests"].get("schema_types") or [])
        new_types = set(mf.sdl_types(sdl or "", manifest["namespace"]))
        for gone in sorted(old_types - new_types):
            problems.append(f"schema: upgrades are additive; type {gone} was removed")
        return problems

    def _write_files(self, name: str, version: str, files: dict[str, bytes]) -> Path:
        """Write to a temporary sibling, then rename: a half-written app directory never exists."""
        final = self.settings.apps_dir / name / version
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
        try:
            for rel, content in files.items():
                target = (temp / rel).resolve()
                if temp.resolve() not in target.parents:
                    raise invalid_app([f"member {rel!r}: escapes the app directory"])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            if final.exists():
                shutil.rmtree(final)
            temp.rename(final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return final

    def submit_catalog(self, identity, name: str) -> dict:
        require_admin(identity)
        found = known_catalog(self.catalog_dir).get(name)
        if found is None:
            raise NotFound(f"no bundled app named {name!r}", code="not_found")
        return self.submit(identity, archive.pack_directory(found))

    def catalog(self) -> dict:
        items = []
        for name, path in known_catalog(self.catalog_dir).items():
            manifest, _ = mf.parse_yaml((path / mf.MANIFEST_FILE).read_bytes())
            manifest = manifest or {}
            doc = store.get(self.db, name)
            items.append({"name": name, "version": manifest.get("version"), "title": manifest.get("title"),
                          "description": manifest.get("description", ""),
                          "installed": doc["version"] if doc and doc["state"] in store.LIVE else None})
        return {"items": items}

    # --- lifecycle ---------------------------------------------------------------------------------------
    def approve(self, identity, name: str, replay: bool = False) -> dict:
        require_admin(identity)
        doc = self._get(name)
        if doc.get("upgrade"):
            up = doc["upgrade"]
            fields = {"version": up["version"], "manifest": up["manifest"], "requests": up["requests"],
                      "title": up["manifest"]["title"], "description": up["manifest"].get("description", ""),
                      "dir": up["dir"], "previous_dir": doc["dir"], "state": "installing", "error": None,
                      "granted": up["requests"], "replay_on_approve": bool(replay), "approved_by": identity.user_id,
                      "progress": {"step": "queued"}}
            doc = store.update(self.db, name, fields, expect_state=("active", "failed"), unset=("upgrade",))
        elif doc["state"] in ("pending_approval", "failed"):
            doc = store.update(self.db, name, {"state": "installing", "error": None, "granted": doc["requests"],
                                               "replay_on_approve": bool(replay), "approved_by": identity.user_id,
                                               "progress": {"step": "queued"}},
                               expect_state=("pending_approval", "failed"))
        else:
            raise Conflict(f"{name} is {doc['state']}, nothing to approve", code="invalid_state")
        if doc is None:
            raise Conflict(f"{name} changed meanwhile; look again", code="invalid_state")
        return store.public_json(doc)

    def reject(self, identity, name: str) -> dict:
        require_admin(identity)
        doc = self._get(name)
        if doc.get("upgrade"):
            shutil.rmtree(doc["upgrade"]["dir"], ignore_errors=True)
            doc = store.update(self.db, name, {}, unset=("upgrade",))
            return store.public_json(doc)
        if doc["state"] != "pending_approval":
            raise Conflict(f"{name} is {doc['state']}, nothing to reject", code="invalid_state")
        shutil.rmtree(doc["dir"], ignore_errors=True)
        store.delete(self.db, name)
        return {**store.public_json(doc), "state": "rejected"}

    def uninstall(self, identity, name: str, purge: bool = False, on_removed=None) -> None:
        """Stops it at once: the record goes first (no action, trigger or web request reaches it after)."""
        require_admin(identity)
        doc = self._get(name)
        store.delete(self.db, name)
        if doc["state"] in ("active", "installing") or doc.get("granted") is not None:
            try:
                graph_registry().remove_namespace(self.db, doc["namespace"], purge_nodes=purge)
            except ImportError:
                log.warning("graph registry unavailable; namespace %s left in place", doc["namespace"])
        if on_removed is not None:
            on_removed(doc)
        shutil.rmtree(self.settings.apps_dir / name, ignore_errors=True)

    def _get(self, name: str) -> dict:
        doc = store.get(self.db, name)
        if doc is None:
            raise NotFound(f"no app named {name!r}", code="not_found")
        return doc

    def get(self, name: str) -> dict:
        return store.public_json(self._get(name))

    def list(self) -> dict:
        return {"items": [store.public_json(d) for d in store.all_apps(self.db)], "next_cursor": None}

    # --- per user ----------------------------------------------------------------------------------------
    def user_settings(self, name: str, owner: str) -> dict:
        doc = self._get(name)
        found = store.user_doc(self.db, name, owner) or {}
        return mf.settings_defaults(doc["manifest"].get("settings"), found.get("settings"))

    def put_user_settings(self, name: str, owner: str, body: dict) -> dict:
        doc = self._get(name)
        schema = mf.settings_schema(doc["manifest"].get("settings"))
        filled = mf.settings_defaults(doc["manifest"].get("settings"), body)
        problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in Draft202012Validator(schema).iter_errors(filled)]
        if problems:
            raise BadRequest("settings do not match the app's settings schema", code="invalid_settings",
                             details={"problems": problems})
        store.put_user_settings(self.db, name, owner, body)
        return filled


def _extend_grants(manifest: dict) -> set[str]:
    types = ((manifest.get("uses") or {}).get("types") or {})
    return {t for t, kinds in types.items() if isinstance(kinds, list) and "extend" in kinds}
