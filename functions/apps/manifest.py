"""`pcloud-app.yaml`: its JSON Schema and the checks a schema cannot express (CONTRACT §8 "App archives").

`check_manifest` never stops at the first problem: it returns every one it finds (YAML, unknown keys, names,
references to actions and types, templates, files the manifest names) so an author fixes them in one round.
Checks needing the database (SDL through the graph registry, other apps' actions and types) take what they
need as arguments; this module does no I/O.
"""

from __future__ import annotations

import re

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

MANIFEST_FILE = "pcloud-app.yaml"
RESERVED = frozenset({"pcloud", "files", "graph", "events", "apps", "search", "devices", "push"})
CORE_ACTIONS = ("files.read", "files.ensure-folder", "graph.query")
NAME_RE = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
NAMESPACE_RE = r"^[a-z][a-z0-9]{1,30}$"
SEMVER_RE = (r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
             r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
             r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
ACTION_RE = r"^[a-z][a-z0-9-]{0,62}$"
TYPE_REF_RE = re.compile(r"^[a-z][a-z0-9]{1,30}\.[A-Z][A-Za-z0-9]*$")
EVENT_RE = re.compile(r"^(\*|[a-z][a-z0-9_-]*)(\.(\*|[a-z][a-z0-9_-]*))*$")
TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
TEMPLATE_ROOTS = ("event", "settings", "user")
EVENT_FIELDS = ("id", "seq", "type", "subject", "node_type", "owner", "time", "cause")
GRANT_KINDS = ("read", "write", "extend")
DEFAULT_RETRY = {"attempts": 5, "backoff_s": [1, 5, 30, 120, 600]}

_ACTION = {
    "type": "object", "additionalProperties": False, "required": ["path"],
    "properties": {
        "params": {"type": "object"},
        "path": {"type": "string", "pattern": r"^/[^\s]*$"},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 1000},
        "public": {"type": "boolean"},
        "title": {"type": "string"},
        "description": {"type": "string"},
    },
}
_CALL = {
    "type": "object", "additionalProperties": False, "required": ["action"],
    "properties": {"action": {"type": "string"}, "params": {"type": "object"}},
}
_TRIGGER = {
    "type": "object", "additionalProperties": False, "required": ["name", "event", "run"],
    "properties": {
        "name": {"type": "string", "pattern": ACTION_RE},
        "event": {"type": "string", "minLength": 1},
        "where": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
        "run": {"type": "string", "minLength": 1},
        "params": {"type": "object"},
        "retry": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "backoff_s": {"anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0}},
                ]},
            },
        },
    },
}
MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version", "title", "namespace", "runtime"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_RE},
        "version": {"type": "string", "pattern": SEMVER_RE},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 2000},
        "namespace": {"type": "string", "pattern": NAMESPACE_RE},
        "schema": {"type": "string", "minLength": 1},
        "settings": {"type": "object"},
        "runtime": {
            "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
            "properties": {
                "python": {
                    "type": "object", "additionalProperties": False, "required": ["wsgi"],
                    "properties": {
                        "wsgi": {"type": "string",
                                 "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_].*$"},
                        "requirements": {"type": "string", "minLength": 1},
                    },
                },
                "url": {"type": "string", "pattern": r"^https?://[^\s/]+(/[^\s]*)?$"},
            },
        },
        "actions": {"type": "object", "propertyNames": {"pattern": ACTION_RE}, "additionalProperties": _ACTION},
        "init": {"type": "array", "items": _CALL},
        "triggers": {"type": "array", "items": _TRIGGER},
        "uses": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "actions": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
                "types": {"type": "object", "additionalProperties": {
                    "type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(GRANT_KINDS)}}},
            },
        },
        "web": {"type": "object", "additionalProperties": False,
                "properties": {"path": {"type": "string", "pattern": r"^/"}}},
    },
}
_VALIDATOR = Draft202012Validator(MANIFEST_SCHEMA)


def parse_yaml(raw: bytes) -> tuple[dict | None, list[str]]:
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [f"{MANIFEST_FILE}: not UTF-8 text"]
    except yaml.YAMLError as exc:
        return None, [f"{MANIFEST_FILE}: invalid YAML: {exc}".replace("\n", " ")]
    if not isinstance(doc, dict):
        return None, [f"{MANIFEST_FILE}: must be a mapping of keys, got {type(doc).__name__}"]
    return doc, []


def _where(error) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def schema_problems(manifest: dict) -> list[str]:
    problems = []
    for error in sorted(_VALIDATOR.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            problems.append(f"{_where(error)}: unknown key(s) {', '.join(map(str, extra))}")
        elif error.validator == "pattern" and _where(error) in ("name", "namespace", "version"):
            problems.append(f"{_where(error)}: {error.instance!r} is not a valid {_where(error)}")
        else:
            problems.append(f"{_where(error)}: {error.message}")
    return problems


def templates_in(value, where: str, problems: list[str]) -> None:
    """Strings may only hold `{{ root.dotted.lookup }}` with root event, settings or user."""
    if isinstance(value, dict):
        for key, item in value.items():
            templates_in(item, f"{where}/{key}", problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            templates_in(item, f"{where}/{index}", problems)
    elif isinstance(value, str):
        rest = TEMPLATE_RE.sub("", value)
        if "{{" in rest or "}}" in rest or "{%" in rest or "%}" in rest:
            problems.append(f"{where}: template {value!r} is not a plain {{{{ dotted.lookup }}}}")
        for match in TEMPLATE_RE.finditer(value):
            if match.group(1).split(".")[0] not in TEMPLATE_ROOTS:
                problems.append(f"{where}: template {{{{ {match.group(1)} }}}} may only look up "
                                f"{', '.join(TEMPLATE_ROOTS)}")


def _json_schema(schema, where: str, problems: list[str]) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        problems.append(f"{where}: not a valid JSON Schema: {exc.message}")


def sdl_types(sdl: str, namespace: str) -> list[str]:
    """The node types an SDL defines, as `ns.Type` (what the owner is shown in `requests.schema_types`)."""
    return [f"{namespace}.{name}" for name in re.findall(r"(?m)^\s*type\s+([A-Za-z][A-Za-z0-9]*)\s[^{]*@node", sdl)]


def check_manifest(manifest: dict, files: dict[str, bytes], *, max_action_seconds: int,
                   public_actions: dict[str, set[str]], known_types: set[str]) -> list[str]:
    """Every problem of a parsed manifest. `public_actions` = installed app → its public actions;
    `known_types` = `ns.Type` of every installed namespace (the archive's own types are added here)."""
    problems = schema_problems(manifest)
    name = manifest.get("name")
    if isinstance(name, str) and name in RESERVED:
        problems.append(f"name: {name!r} is reserved")
    namespace = manifest.get("namespace") if isinstance(manifest.get("namespace"), str) else None
    if namespace in RESERVED:
        problems.append(f"namespace: {namespace!r} is reserved")

    schema_file = manifest.get("schema")
    if isinstance(schema_file, str):
        if schema_file not in files:
            problems.append(f"schema: file {schema_file!r} is not in the archive")
        else:
            try:
                files[schema_file].decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"schema: {schema_file!r} is not UTF-8 text")
    if isinstance(manifest.get("settings"), dict):
        _json_schema(manifest["settings"], "settings", problems)

    runtime = manifest.get("runtime") if isinstance(manifest.get("runtime"), dict) else {}
    python = runtime.get("python") if isinstance(runtime.get("python"), dict) else None
    if python and isinstance(python.get("requirements"), str) and python["requirements"] not in files:
        problems.append(f"runtime/python/requirements: file {python['requirements']!r} is not in the archive")
    if python and isinstance(python.get("wsgi"), str):
        module = python["wsgi"].split(":", 1)[0].replace(".", "/")
        if f"{module}.py" not in files and f"{module}/__init__.py" not in files:
            problems.append(f"runtime/python/wsgi: module {python['wsgi'].split(':', 1)[0]!r} is not in the archive")

    actions = manifest.get("actions") if isinstance(manifest.get("actions"), dict) else {}
    for action, spec in actions.items():
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("params"), dict):
            _json_schema(spec["params"], f"actions/{action}/params", problems)
        timeout = spec.get("timeout_s")
        if isinstance(timeout, (int, float)) and timeout > max_action_seconds:
            problems.append(f"actions/{action}/timeout_s: {timeout} is over the limit of {max_action_seconds}")

    uses = manifest.get("uses") if isinstance(manifest.get("uses"), dict) else {}
    used_actions = [a for a in uses.get("actions") or [] if isinstance(a, str)]
    for index, ref in enumerate(used_actions):
        if ref in CORE_ACTIONS:
            continue
        app, _, action = ref.partition(".")
        if not action:
            problems.append(f"uses/actions/{index}: {ref!r} is neither a core action nor app.action")
        elif app == name:
            problems.append(f"uses/actions/{index}: {ref!r} is the app's own action (no grant needed)")
        elif action not in public_actions.get(app, set()):
            problems.append(f"uses/actions/{index}: unknown action {ref!r} (not a public action of an installed "
                            f"app; core actions: {', '.join(CORE_ACTIONS)})")
    types = uses.get("types") if isinstance(uses.get("types"), dict) else {}
    for ref in types:
        if not TYPE_REF_RE.match(str(ref)):
            problems.append(f"uses/types: {ref!r} is not namespace.Type")
        elif ref.split(".")[0] == namespace:
            problems.append(f"uses/types: {ref!r} is in the app's own namespace (no grant needed)")
        elif ref not in known_types:
            problems.append(f"uses/types: unknown type {ref!r}")

    def check_call(ref, where: str) -> None:
        if not isinstance(ref, str):
            return
        if ref in actions:
            return
        if ref in used_actions:
            return
        problems.append(f"{where}: unknown action {ref!r} (an own action, or one listed in uses.actions)")

    for index, call in enumerate(manifest.get("init") or []):
        if isinstance(call, dict):
            check_call(call.get("action"), f"init/{index}/action")
            templates_in(call.get("params") or {}, f"init/{index}/params", problems)
    trigger_names = set()
    for index, trigger in enumerate(manifest.get("triggers") or []):
        if not isinstance(trigger, dict):
            continue
        where = f"triggers/{index}"
        if trigger.get("name") in trigger_names:
            problems.append(f"{where}/name: duplicate trigger name {trigger['name']!r}")
        trigger_names.add(trigger.get("name"))
        if isinstance(trigger.get("event"), str) and not EVENT_RE.match(trigger["event"]):
            problems.append(f"{where}/event: {trigger['event']!r} is not a dotted event type (`*` = one segment)")
        check_call(trigger.get("run"), f"{where}/run")
        templates_in(trigger.get("params") or {}, f"{where}/params", problems)
        for key in trigger.get("where") or {}:
            if key not in EVENT_FIELDS and not (key.startswith("data.") and len(key) > 5):
                problems.append(f"{where}/where: {key!r} is neither an event field "
                                f"({', '.join(EVENT_FIELDS)}) nor a data. path")
    return problems


def requests_of(manifest: dict, sdl: str | None) -> dict:
    """What the owner reviews before approving (`requests` in §8)."""
    uses = manifest.get("uses") or {}
    return {
        "actions": list(uses.get("actions") or []),
        "types": {k: list(v) for k, v in (uses.get("types") or {}).items()},
        "triggers": [{"name": t["name"], "event": t["event"], "where": t.get("where") or {}, "run": t["run"]}
                     for t in manifest.get("triggers") or []],
        "schema_types": sdl_types(sdl, manifest["namespace"]) if sdl else [],
        "web": (manifest.get("web") or {}).get("path") if manifest.get("web") is not None else None,
    }


def settings_defaults(schema: dict | None, values: dict | None) -> dict:
    """A user's settings with the schema's top-level defaults filled in and `enabled` (default true)."""
    out = {}
    for key, prop in ((schema or {}).get("properties") or {}).items():
        if isinstance(prop, dict) and "default" in prop:
            out[key] = prop["default"]
    out["enabled"] = True
    out.update(values or {})
    return out


def settings_schema(schema: dict | None) -> dict:
    """The app's settings schema with the implied boolean `enabled`."""
    schema = dict(schema or {"type": "object"})
    props = dict(schema.get("properties") or {})
    props.setdefault("enabled", {"type": "boolean", "default": True})
    schema["properties"] = props
    return schema


def version_key(version: str) -> tuple:
    """Semver precedence (pre-releases sort before their release)."""
    core, _, rest = version.partition("+")[0].partition("-")
    nums = tuple(int(x) for x in core.split("."))
    if not rest:
        return nums + (1,)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in rest.split("."))
    return nums + (0, parts)
