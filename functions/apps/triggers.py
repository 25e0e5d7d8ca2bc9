"""Matching events to app triggers and turning a match into its execution (CONTRACT §8). No I/O here.

Type patterns are dotted with `*` for exactly one segment; `where` compares event fields or `data.` paths for
equality, a string ending in `/**` being a path prefix. Templates are `{{ root.dotted.lookup }}` of event,
settings and user; a string that is nothing but one template keeps the looked-up value's type.
"""

from __future__ import annotations

from functions.apps import manifest as mf

MAX_DEPTH = 8


def type_matches(pattern: str, event_type: str) -> bool:
    want, got = pattern.split("."), event_type.split(".")
    return len(want) == len(got) and all(w == "*" or w == g for w, g in zip(want, got, strict=True))


def lookup(doc, dotted: str):
    value = doc
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


def where_matches(where: dict | None, event: dict) -> bool:
    for key, want in (where or {}).items():
        got = lookup(event, key)
        if isinstance(want, str) and want.endswith("/**"):
            if not isinstance(got, str) or not got.startswith(want[:-2]):
                return False
        elif got != want:
            return False
    return True


def render(value, context: dict):
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, str):
        whole = mf.TEMPLATE_RE.fullmatch(value.strip())
        if whole:
            return lookup(context, whole.group(1))
        return mf.TEMPLATE_RE.sub(lambda m: _text(lookup(context, m.group(1))), value)
    return value


def _text(value) -> str:
    return "" if value is None else str(value)


def target(app: str, run: str) -> tuple[str, str]:
    """(app, action) a trigger's `run` names: own action, another app's `app.action`, or a core action."""
    if "." in run:
        other, _, action = run.partition(".")
        return other, action
    return app, run


def matches(app_doc: dict, event: dict) -> list[dict]:
    """The app's triggers this event fires (the loop guard applied: never an event its own execution caused)."""
    cause = event.get("cause") or {}
    if cause.get("app") == app_doc["_id"]:
        return []
    return [t for t in app_doc["manifest"].get("triggers") or []
            if type_matches(t["event"], event["type"]) and where_matches(t.get("where"), event)]


def depth_of(event: dict) -> int:
    """Causal depth of what an event triggers: one more than the execution that caused it (0 for people)."""
    cause = event.get("cause") or {}
    return int(cause.get("depth") or 0) + 1 if cause.get("app") else 0
