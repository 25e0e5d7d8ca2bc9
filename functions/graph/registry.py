"""The schema registry: each namespace's SDL, checked and turned into a type model, kept in MongoDB.

Apps declare node types in SDL (`type Image @node { … }`, short names inside their namespace, other
namespaces by SDL name `photos_Image`). The registry checks a namespace's SDL against everything already
installed, stores it with its parsed model, and bumps one version counter; every process compares that
counter per request and rebuilds its executable schema when it moved (functions/graph/schema.py).

Collections owned here: `graph_schemas` (one document per namespace) and `graph_registry` (the version).
"""

from __future__ import annotations

import re

from graphql import GraphQLSyntaxError, parse
from graphql.language import (
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    StringValueNode,
)
from pymongo import ReturnDocument

from runtime.ids import utcnow

SCALARS = ("String", "Int", "Float", "Boolean", "ID", "JSON", "DateTime")
SEARCHABLE = ("String", "ID", "Int", "Float", "DateTime")
RESERVED_FIELDS = ("id", "type", "rev", "createdAt", "updatedAt", "data")
NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9]{1,30}$")
TYPE_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
FIELD_RE = re.compile(r"^[a-z][A-Za-z0-9_]{0,62}$")
MAX_FIELDS = 200
VERSION_ID = "version"


class SchemaProblems(Exception):
    """The SDL was refused; `problems` lists every reason found, each a sentence a developer can act on."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def sdl_name(full: str) -> str:
    """`photos.Image` → `photos_Image` (the name in the executable schema)."""
    ns, _, short = full.partition(".")
    return f"{ns}_{short}"


def full_name(sdl: str) -> str:
    ns, _, short = sdl.partition("_")
    return f"{ns}.{short}"


# ---------------------------------------------------------------------------------------------------------
# Reading the registry


def version(db) -> int:
    doc = db.graph_registry.find_one({"_id": VERSION_ID}, {"version": 1})
    return int(doc["version"]) if doc else 0


def namespaces(db) -> list[dict]:
    return list(db.graph_schemas.find({}).sort("_id", 1))


def snapshot(db) -> tuple[int, list[dict]]:
    """The version and the namespace documents it names (re-read if an install raced the read)."""
    for _ in range(5):
        before = version(db)
        docs = namespaces(db)
        if version(db) == before:
            return before, docs
    return version(db), namespaces(db)


def merge(docs: list[dict]) -> dict:
    """The model every resolver works from: `{"types": {full: {"ns", "fields": {name: field}}}, "apps": {ns: app}}`.

    Built leniently: an extension of a type that is gone, or a relation to one, is left out, so removing a
    namespace never breaks the schema of the namespaces that pointed into it.
    """
    types: dict[str, dict] = {}
    apps: dict[str, str] = {}
    for doc in docs:
        apps[doc["_id"]] = doc.get("app")
        for name, spec in doc.get("types", {}).items():
            types[name] = {"ns": doc["_id"], "fields": {f: dict(v) for f, v in spec["fields"].items()}}
    for doc in docs:
        for name, spec in doc.get("extensions", {}).items():
            if name not in types:
                continue
            for fname, field in spec["fields"].items():
                types[name]["fields"].setdefault(fname, dict(field))
    for spec in types.values():
        for fname in [f for f, v in spec["fields"].items() if v.get("target") and v["target"] not in types]:
            del spec["fields"][fname]
    for tname, spec in types.items():
        for fname, field in spec["fields"].items():
            inv = field.get("inverse")
            if inv:
                other = types[field["target"]]["fields"].get(inv)
                if other is None or other.get("target") != tname:
                    field["inverse"] = None
                elif not other.get("inverse"):
                    other["inverse"] = fname
    return {"types": types, "apps": apps}


# ---------------------------------------------------------------------------------------------------------
# Checking an SDL


def _unwrap(node) -> tuple[str | None, bool, bool, str | None]:
    """(named type, is list, required, problem) of a field's type node; lists of lists are refused."""
    required = isinstance(node, NonNullTypeNode)
    if required:
        node = node.type
    is_list = isinstance(node, ListTypeNode)
    if is_list:
        node = node.type
        if isinstance(node, NonNullTypeNode):
            node = node.type
        if not isinstance(node, NamedTypeNode):
            return None, True, required, "lists of lists are not supported"
    return node.name.value, is_list, required, None


def _parse(namespace: str, sdl: str, others: dict, problems: list[str]):
    """The namespace's own types and its extensions of others' types, as models (problems appended)."""
    try:
        doc = parse(sdl, no_location=False)
    except GraphQLSyntaxError as exc:
        problems.append(f"SDL syntax error: {exc.message} (line {exc.locations[0].line if exc.locations else '?'})")
        return {}, {}
    own_defs: dict[str, ObjectTypeDefinitionNode] = {}
    ext_defs: list[ObjectTypeExtensionNode] = []
    for definition in doc.definitions:
        if isinstance(definition, ObjectTypeDefinitionNode):
            name = definition.name.value
            if "_" in name:
                prefix = name.split("_", 1)[0]
                if prefix == namespace:
                    problems.append(f"type {name}: write your own types by their short name "
                                    f"({name.split('_', 1)[1]})")
                else:
                    problems.append(f"type {name} is outside namespace {namespace}: only the app owning "
                                    f"namespace {prefix} defines its types (use `extend type {name}` with an "
                                    "extend grant)")
                continue
            if not TYPE_RE.match(name):
                problems.append(f"type {name}: type names start with a capital letter and use only letters "
                                "and digits")
                continue
            if name in own_defs:
                problems.append(f"type {name} is defined twice")
                continue
            if not any(d.name.value == "node" for d in definition.directives or ()):
                problems.append(f"type {name}: declare node types as `type {name} @node {{ … }}`")
            if definition.interfaces:
                problems.append(f"type {name}: `implements` is not supported (every node type implements Node)")
            own_defs[name] = definition
        elif isinstance(definition, ObjectTypeExtensionNode):
            ext_defs.append(definition)
        else:
            kind = type(definition).__name__.removesuffix("Node")
            problems.append(f"{kind} definitions are not supported: declare `type T @node {{ … }}` and "
                            "`extend type other_T { … }` only")

    def resolve(tname: str) -> tuple[str | None, str | None]:
        """(scalar kind or None, relation target or None); both None when unknown."""
        if tname in SCALARS:
            return tname, None
        if tname in own_defs:
            return None, f"{namespace}.{tname}"
        if "_" in tname:
            full = full_name(tname)
            if full.split(".")[0] == namespace and full.split(".")[1] in own_defs:
                return None, full
            if full in others:
                return None, full
        return None, None

    def fields_of(tdef, where: str, existing: dict | None) -> dict:
        out: dict[str, dict] = {}
        if not tdef.fields and existing is None:
            problems.append(f"{where}: declare at least one field")
        if len(tdef.fields or ()) > MAX_FIELDS:
            problems.append(f"{where}: at most {MAX_FIELDS} fields")
        for fdef in tdef.fields or ():
            fname = fdef.name.value
            label = f"{where}.{fname}"
            if fname in RESERVED_FIELDS:
                problems.append(f"{label}: {fname} is reserved (every node has {', '.join(RESERVED_FIELDS)})")
                continue
            if not FIELD_RE.match(fname) or "__" in fname:
                problems.append(f"{label}: field names start with a lower-case letter and use letters, "
                                "digits and single underscores")
                continue
            if fname in out:
                problems.append(f"{label} is declared twice")
                continue
            if existing is not None and fname in existing:
                problems.append(f"{label} clashes with field {fname} already on {where} "
                                f"(from namespace {existing[fname].get('ns')})")
                continue
            if fdef.arguments:
                problems.append(f"{label}: field arguments are not supported")
            tname, is_list, required, why = _unwrap(fdef.type)
            if why:
                problems.append(f"{label}: {why}")
                continue
            kind, target = resolve(tname)
            if kind is None and target is None:
                problems.append(f"{label}: unknown type {tname} (scalars: {', '.join(SCALARS)}; own node types by "
                                "short name, other namespaces' types as ns_Type)")
                continue
            field = {"kind": kind or "Node", "target": target, "list": is_list, "required": required,
                     "search": False, "inverse": None, "ns": namespace}
            for directive in fdef.directives or ():
                dname = directive.name.value
                if dname == "search":
                    if kind not in SEARCHABLE:
                        problems.append(f"{label}: @search applies to {', '.join(SEARCHABLE)} fields "
                                        "(and lists of them)")
                    field["search"] = True
                elif dname == "inverse":
                    arg = next((a for a in directive.arguments or () if a.name.value == "field"), None)
                    if arg is None or not isinstance(arg.value, StringValueNode):
                        problems.append(f'{label}: write @inverse(field: "name")')
                    elif target is None:
                        problems.append(f"{label}: @inverse applies to relation fields only")
                    else:
                        field["inverse"] = arg.value.value
                else:
                    problems.append(f"{label}: unknown directive @{dname} (known: @search, @inverse)")
            out[fname] = field
        return out

    own: dict[str, dict] = {}
    for name, tdef in own_defs.items():
        own[f"{namespace}.{name}"] = {"fields": fields_of(tdef, name, None)}
    extensions: dict[str, dict] = {}
    for edef in ext_defs:
        name = edef.name.value
        if name in own_defs or full_name(name) in own:
            problems.append(f"extend type {name}: extend only other namespaces' types; add the fields to "
                            "your own type instead")
            continue
        full = full_name(name) if "_" in name else None
        if full is None or full not in others:
            problems.append(f"extend type {name}: unknown type (write other namespaces' types as ns_Type)")
            continue
        existing = dict(others[full]["fields"])
        if full in extensions:
            existing.update(extensions[full]["fields"])
        fields = fields_of(edef, name, existing)
        extensions.setdefault(full, {"fields": {}})["fields"].update(fields)
    return own, extensions


def _check(db, namespace: str, sdl: str, app: str, extend_grants) -> tuple[list[str], dict, dict]:
    problems: list[str] = []
    if not NAMESPACE_RE.match(namespace or ""):
        return [f"namespace {namespace!r} must match {NAMESPACE_RE.pattern}"], {}, {}
    if not isinstance(sdl, str):
        return ["the schema must be SDL text"], {}, {}
    docs = namespaces(db)
    current = next((d for d in docs if d["_id"] == namespace), None)
    if current is not None and current.get("app") != app:
        problems.append(f"namespace {namespace} belongs to app {current.get('app')}")
    others_docs = [d for d in docs if d["_id"] != namespace]
    # Others' types as they stand, with every extension but this namespace's own (which are being replaced).
    others = merge(others_docs)["types"]
    own, extensions = _parse(namespace, sdl, others, problems)
    grants = set(extend_grants or ())
    for name in extensions:
        if name not in grants:
            problems.append(f"extend type {sdl_name(name)}: needs an approved extend grant on {name}")
    # Fields other namespaces added to our types must stay possible.
    for doc in others_docs:
        for name, spec in doc.get("extensions", {}).items():
            if name in own:
                for fname in spec["fields"]:
                    if fname in own[name]["fields"]:
                        problems.append(f"{sdl_name(name)}.{fname} clashes with the field namespace "
                                        f"{doc['_id']} added with extend type")
    _check_inverses(own, extensions, others, problems)
    if current is not None:
        _check_additive(current, own, extensions, problems)
    return problems, own, extensions


def _check_inverses(own: dict, extensions: dict, others: dict, problems: list[str]) -> None:
    def fields(tname: str) -> dict:
        out = dict(others.get(tname, {}).get("fields", {}))
        out.update(own.get(tname, {}).get("fields", {}))
        out.update(extensions.get(tname, {}).get("fields", {}))
        return out

    for source in (own, extensions):
        for tname, spec in source.items():
            for fname, field in spec["fields"].items():
                inv = field.get("inverse")
                if not inv:
                    continue
                other = fields(field["target"]).get(inv)
                label = f"{sdl_name(tname)}.{fname}"
                if other is None:
                    problems.append(f"{label}: @inverse(field: \"{inv}\") names no field of "
                                    f"{sdl_name(field['target'])}")
                elif other.get("target") != tname:
                    problems.append(f"{label}: @inverse field {sdl_name(field['target'])}.{inv} must be a "
                                    f"relation to {sdl_name(tname)}")


def _same(old: dict, new: dict) -> bool:
    return all(old.get(k) == new.get(k) for k in ("kind", "target", "list", "required"))


def _check_additive(current: dict, own: dict, extensions: dict, problems: list[str]) -> None:
    """Upgrades may add types and optional fields; removing or retyping anything is refused."""
    for source, old_types in ((own, current.get("types", {})), (extensions, current.get("extensions", {}))):
        for tname, old in old_types.items():
            new = source.get(tname)
            if new is None:
                problems.append(f"non-additive change: {sdl_name(tname)} "
                                f"{'was removed' if source is own else 'extension was removed'}")
                continue
            for fname, ofield in old["fields"].items():
                nfield = new["fields"].get(fname)
                if nfield is None:
                    problems.append(f"non-additive change: field {sdl_name(tname)}.{fname} was removed")
                elif not _same(ofield, nfield):
                    problems.append(f"non-additive change: field {sdl_name(tname)}.{fname} changed its type")
            for fname, nfield in new["fields"].items():
                if fname not in old["fields"] and nfield.get("required"):
                    problems.append(f"non-additive change: new field {sdl_name(tname)}.{fname} must be "
                                    "optional (existing nodes lack it)")


# ---------------------------------------------------------------------------------------------------------
# The API the application manager calls


def check_namespace(db, namespace: str, sdl: str, app: str, extend_grants: set[str] = frozenset()) -> list[str]:
    """Every problem with installing `sdl` as `namespace` for `app` now; [] when it would install."""
    return _check(db, namespace, sdl, app, extend_grants)[0]


def install_namespace(db, namespace: str, sdl: str, app: str, extend_grants: set[str] = frozenset()) -> int:
    """Install or upgrade a namespace; returns the new registry version. Raises SchemaProblems."""
    problems, own, extensions = _check(db, namespace, sdl, app, extend_grants)
    if problems:
        raise SchemaProblems(problems)
    db.graph_schemas.replace_one(
        {"_id": namespace},
        {"_id": namespace, "app": app, "sdl": sdl, "extend_grants": sorted(extend_grants or ()), "types": own,
         "extensions": extensions, "installed_at": utcnow()},
        upsert=True)
    _ensure_field_indexes(db, own, extensions)
    # The version moves after the document landed: a process that sees the new version reads the new SDL.
    return _bump(db)


def remove_namespace(db, namespace: str, purge_nodes: bool = False) -> None:
    """Drop a namespace's types and extensions from the schema. With purge_nodes its nodes are deleted (each
    with its `graph.node.deleted` event) and the fields it added to other namespaces' types are removed."""
    doc = db.graph_schemas.find_one({"_id": namespace})
    if doc is None:
        return
    if purge_nodes:
        from functions.graph import nodes

        model = merge(namespaces(db))
        nodes.purge_types(db, list(doc.get("types", {})), model)
        nodes.drop_fields(db, {t: list(spec["fields"]) for t, spec in doc.get("extensions", {}).items()})
    db.graph_schemas.delete_one({"_id": namespace})
    _bump(db)


def _bump(db) -> int:
    doc = db.graph_registry.find_one_and_update({"_id": VERSION_ID}, {"$inc": {"version": 1}}, upsert=True,
                                                return_document=ReturnDocument.AFTER)
    return int(doc["version"])


def _ensure_field_indexes(db, own: dict, extensions: dict) -> None:
    from functions.graph import nodes

    names = set()
    for source in (own, extensions):
        for spec in source.values():
            names.update(f for f, v in spec["fields"].items() if v["kind"] != "JSON")
    nodes.ensure_field_indexes(db, sorted(names))
