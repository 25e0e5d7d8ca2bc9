"""Who may do what with a node type: users own everything of theirs; apps their namespace plus grants.

An app invocation (Identity.app set) has full access to the types of the namespace it owns, and to other
namespaces' types only as the owner granted (`grants.types`: read | write | extend).
"""

from __future__ import annotations

from functions.graph.errors import Forbidden


def has_scope(ident, scope: str) -> bool:
    return ident.has_scope(scope)


def app_of(ident) -> str | None:
    return ident.app


def granted(ident, model: dict, type_name: str) -> set[str]:
    app = app_of(ident)
    if app is None:
        return {"read", "write", "extend"}
    ns = type_name.split(".", 1)[0]
    if model["apps"].get(ns) == app:
        return {"read", "write", "extend"}
    grants = ident.grants or {}
    return set((grants.get("types") or {}).get(type_name, ()))


def require(ident, model: dict, type_name: str, action: str) -> None:
    if action not in granted(ident, model, type_name):
        who = app_of(ident)
        raise Forbidden(f"app {who} has no {action} grant on {type_name}", {"required": action})


def may_write_fields(ident, model: dict, type_name: str, fields) -> bool:
    """Write access, or an extend grant and only fields this app's namespace added to the type."""
    have = granted(ident, model, type_name)
    if "write" in have:
        return True
    if "extend" not in have:
        return False
    app = app_of(ident)
    own_ns = {ns for ns, a in model["apps"].items() if a == app}
    declared = model["types"][type_name]["fields"]
    return all(f in declared and declared[f].get("ns") in own_ns for f in fields)


def require_write(ident, model: dict, type_name: str, fields) -> None:
    if not may_write_fields(ident, model, type_name, fields):
        raise Forbidden(f"app {app_of(ident)} has no write grant on {type_name}", {"required": "write"})


def cause_of(ident) -> dict | None:
    if ident.app is None and ident.execution_id is None:
        return None
    return {"app": ident.app, "execution_id": ident.execution_id, "depth": ident.depth}
