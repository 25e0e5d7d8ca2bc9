"""The executable schema: core SDL (the generic API of CONTRACT §7) plus a typed API generated per node type.

Built with ariadne from the registry's merged model, once per registry version per process: `current(db)`
compares the stored version on each request (one tiny read) and rebuilds and swaps when it moved, so a
namespace installed by any process is served by every process without a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ariadne import InterfaceType, MutationType, ObjectType, QueryType, ScalarType, make_executable_schema
from graphql import GraphQLSchema, print_schema, value_from_ast_untyped

from functions.graph import access, nodes, registry
from functions.graph.errors import BadInput, NotFound
from functions.graph.registry import sdl_name
from runtime.ids import iso

CORE_SDL = '''
"Any JSON value."
scalar JSON

"An ISO 8601 date-time string."
scalar DateTime

"Every node, whatever its type."
interface Node {
  id: ID!
  "ns.Type"
  type: String!
  rev: Int!
  createdAt: String!
  updatedAt: String!
  "The node's fields as stored (a relation is the target's id)."
  data: JSON!
}

type NodePage {
  items: [Node!]!
  nextCursor: String
}

type SearchHit {
  node: Node!
  score: Float!
}

type SearchPage {
  items: [SearchHit!]!
  nextCursor: String
}

type Query {
  "null when absent or not the caller's"
  node(id: ID!): Node
  "where: an AND of {field: value} equalities on data; first <= 500"
  nodes(type: String!, where: JSON, first: Int = 50, after: String): NodePage!
  search(q: String!, types: [String!], first: Int = 20, after: String): SearchPage!
}

type Mutation {
  createNode(type: String!, data: JSON!): Node!
  "shallow merge, null removes a field; a stale rev is CONFLICT"
  updateNode(id: ID!, data: JSON!, rev: Int): Node!
  deleteNode(id: ID!): Boolean!
}
'''

NODE_FIELDS = "  id: ID!\n  type: String!\n  rev: Int!\n  createdAt: String!\n  updatedAt: String!\n  data: JSON!\n"
RELATION_FIRST = 100
DOCUMENT_CACHE = 512
MAX_SEARCH = 500  # as first of nodes (and the search service's own limit)


@dataclass
class Built:
    version: int
    model: dict
    schema: GraphQLSchema
    cost_map: dict
    sdl: str
    # query text → (document, errors of the rules that do not depend on variables): validating is the dearest
    # step of a small request, and clients send the same few queries over and over.
    documents: OrderedDict = field(default_factory=OrderedDict)

    def remember(self, query: str, entry: tuple) -> None:
        self.documents[query] = entry
        if len(self.documents) > DOCUMENT_CACHE:
            self.documents.popitem(last=False)


_lock = threading.Lock()
_built: OrderedDict[tuple[int, str], Built] = OrderedDict()  # per (client, database): tests make many databases
MAX_BUILT = 16


def current(db) -> Built:
    """The executable schema for the registry as it stands (rebuilt only when its version moved)."""
    key = (id(db.client), db.name)
    now = registry.version(db)
    found = _built.get(key)
    if found is not None and found.version == now:
        return found
    with _lock:
        found = _built.get(key)
        if found is not None and found.version == now:
            return found
        ver, docs = registry.snapshot(db)
        built = build(ver, registry.merge(docs))
        _built[key] = built
        _built.move_to_end(key)
        while len(_built) > MAX_BUILT:
            _built.popitem(last=False)
        return built


# ---------------------------------------------------------------------------------------------------------
# SDL generation


def _out_type(spec: dict) -> str:
    base = sdl_name(spec["target"]) if spec["target"] else spec["kind"]
    return f"[{base}!]" if spec["list"] else base


def _in_type(spec: dict, *, for_filter: bool = False) -> str:
    base = "ID" if spec["target"] else spec["kind"]
    if for_filter:
        return base
    return f"[{base}!]" if spec["list"] else base


def typed_sdl(model: dict) -> tuple[str, dict]:
    """The typed API's SDL and its cost map entries."""
    parts: list[str] = []
    cost: dict[str, dict] = {"Query": {}, "Mutation": {}}
    queries, mutations = [], []
    for full, spec in sorted(model["types"].items()):
        name = sdl_name(full)
        fields = spec["fields"]
        lines, inputs, filters = [], [], []
        cost[name] = {}
        for fname, f in sorted(fields.items()):
            if f["target"] and f["list"]:
                lines.append(f"  {fname}(first: Int = {RELATION_FIRST}): [{sdl_name(f['target'])}!]!")
                cost[name][fname] = {"complexity": 1, "multipliers": ["first"]}
            else:
                lines.append(f"  {fname}: {_out_type(f)}")
                if f["target"]:
                    cost[name][fname] = {"complexity": 1}
            inputs.append(f"  {fname}: {_in_type(f)}")
            if f["kind"] != "JSON":
                filters.append(f"  {fname}: {_in_type(f, for_filter=True)}")
        parts.append(f'"Node type {full}"\ntype {name} implements Node {{\n{NODE_FIELDS}' + "\n".join(lines) + "\n}")
        parts.append(f"input {name}_Input {{\n" + "\n".join(inputs) + "\n}")
        if filters:
            parts.append(f'"Equalities, ANDed"\ninput {name}_Filter {{\n' + "\n".join(filters) + "\n}")
        parts.append(f"type {name}_Page {{\n  items: [{name}!]!\n  nextCursor: String\n}}")
        filt = f"filter: {name}_Filter, " if filters else ""
        queries.append(f"  get_{name}(id: ID!): {name}")
        queries.append(f"  query_{name}({filt}first: Int = 50, after: String): {name}_Page!")
        cost["Query"][f"get_{name}"] = {"complexity": 1}
        cost["Query"][f"query_{name}"] = {"complexity": 1, "multipliers": ["first"]}
        mutations.append(f"  add_{name}(input: {name}_Input!): {name}!")
        mutations.append(f"  update_{name}(id: ID!, set: {name}_Input!, rev: Int): {name}!")
        mutations.append(f"  delete_{name}(id: ID!): Boolean!")
        for op in ("add", "update", "delete"):
            cost["Mutation"][f"{op}_{name}"] = {"complexity": 1}
    if queries:
        parts.append("extend type Query {\n" + "\n".join(queries) + "\n}")
        parts.append("extend type Mutation {\n" + "\n".join(mutations) + "\n}")
    return "\n\n".join(parts), {k: v for k, v in cost.items() if v}


# ---------------------------------------------------------------------------------------------------------
# Resolvers (the context is functions.graph.service.GraphContext)


def _serialize_json(value):
    return value


def _parse_json_literal(ast, variables=None):
    return value_from_ast_untyped(ast, variables)


def _parse_datetime(value):
    return nodes.check_value({"list": False, "target": None, "kind": "DateTime"}, value, "DateTime")


def _parse_datetime_literal(ast, variables=None):
    return _parse_datetime(value_from_ast_untyped(ast, variables))


def _node_id(obj, _info):
    return obj["_id"]


def _created(obj, _info):
    return iso(obj["created_at"])


def _updated(obj, _info):
    return iso(obj["updated_at"])


def _page(docs: list[dict], cursor: str | None) -> dict:
    return {"items": docs, "nextCursor": cursor}


def _readable(ctx, type_name) -> None:
    if not isinstance(type_name, str) or type_name not in ctx.model["types"]:
        raise BadInput(f"unknown type {type_name!r}", {"type": type_name})
    access.require(ctx.ident, ctx.model, type_name, "read")


def resolve_node(_, info, id):
    ctx = info.context
    doc = ctx.loader.one(id)
    if doc is None or doc["type"] not in ctx.model["types"]:
        return None
    access.require(ctx.ident, ctx.model, doc["type"], "read")
    ctx.count(1)
    return doc


def resolve_nodes(_, info, type, where=None, first=50, after=None):
    ctx = info.context
    _readable(ctx, type)
    query = nodes.where_filter(ctx.model, type, where)
    docs, cursor = nodes.find_page(ctx.db, ctx.owner, type, query, nodes.check_first(first), after)
    ctx.seen(docs)
    return _page(docs, cursor)


def resolve_search(_, info, q, types=None, first=20, after=None):
    ctx = info.context
    if not 1 <= first <= MAX_SEARCH:
        raise BadInput(f"first must be between 1 and {MAX_SEARCH}", {"argument": "first"})
    for t in types or ():
        _readable(ctx, t)
    if types is None:  # graph nodes only (file hits are not nodes), and only what the caller may read
        types = sorted(t for t in ctx.model["types"] if "read" in access.granted(ctx.ident, ctx.model, t))
    if not types:
        return {"items": [], "nextCursor": None}
    hits, cursor = ctx.search(q, types, first, after)
    docs = {d["_id"]: d for d in ctx.loader.many([h["id"] for h in hits])}
    items = []
    for hit in hits:
        doc = docs.get(hit["id"])
        if doc is None or doc["type"] not in ctx.model["types"]:
            continue
        if "read" not in access.granted(ctx.ident, ctx.model, doc["type"]):
            continue
        items.append({"node": doc, "score": hit.get("score", 0.0)})
    ctx.count(len(items))
    return {"items": items, "nextCursor": cursor}


def resolve_create(_, info, type, data):
    ctx = info.context
    doc = ctx.store().create(type, data)
    ctx.count(1)
    return doc


def resolve_update(_, info, id, data, rev=None):
    ctx = info.context
    doc = ctx.store().update(id, data, rev)
    ctx.count(1)
    return doc


def resolve_delete(_, info, id):
    return info.context.store().delete(id)


def _page_items(page, info):
    info.context.count(len(page["items"]))
    return page["items"]


def _typed(full: str):
    """Resolvers of the typed API for one node type."""

    def same_type(ctx, node_id) -> dict:
        doc = nodes.find_one(ctx.db, ctx.owner, node_id)
        if doc is None or doc["type"] != full:
            raise NotFound(f"no {full} {node_id}", {"id": node_id})
        return doc

    def get(_, info, id):
        ctx = info.context
        access.require(ctx.ident, ctx.model, full, "read")
        doc = ctx.loader.one(id)
        if doc is None or doc["type"] != full:
            return None
        ctx.count(1)
        return doc

    def query(_, info, filter=None, first=50, after=None):
        ctx = info.context
        access.require(ctx.ident, ctx.model, full, "read")
        where = nodes.where_filter(ctx.model, full, filter)
        docs, cursor = nodes.find_page(ctx.db, ctx.owner, full, where, nodes.check_first(first), after)
        ctx.seen(docs)
        return _page(docs, cursor)

    def add(_, info, input):
        ctx = info.context
        doc = ctx.store().create(full, input)
        ctx.count(1)
        return doc

    def update(_, info, id, set, rev=None):
        ctx = info.context
        same_type(ctx, id)
        doc = ctx.store().update(id, set, rev)
        ctx.count(1)
        return doc

    def delete(_, info, id):
        ctx = info.context
        same_type(ctx, id)
        return ctx.store().delete(id)

    return get, query, add, update, delete


def _field(fname: str):
    def resolve(obj, _info):
        return obj["data"].get(fname)

    return resolve


def _relation(source: str, fname: str, spec: dict):
    target, is_list = spec["target"], spec["list"]

    def resolve(obj, info, first=RELATION_FIRST):
        ctx = info.context
        value = obj["data"].get(fname)
        if value is None:
            return [] if is_list else None
        access.require(ctx.ident, ctx.model, target, "read")
        if is_list:
            if not 0 <= first <= nodes.MAX_FIRST:
                raise BadInput(f"first must be between 0 and {nodes.MAX_FIRST}", {"argument": "first"})
            docs = [d for d in ctx.loader.load(source, fname, value) if d is not None and d["type"] == target]
            docs = docs[:first]
            ctx.count(len(docs))
            return docs
        docs = ctx.loader.load(source, fname, [value])
        doc = docs[0] if docs else None
        if doc is None or doc["type"] != target:
            return None
        ctx.count(1)
        return doc

    return resolve


def _resolve_type(obj, *_):
    return sdl_name(obj["type"])


def build(version: int, model: dict) -> Built:
    typed, typed_cost = typed_sdl(model)
    sdl = CORE_SDL + "\n" + typed
    json_scalar = ScalarType("JSON", serializer=_serialize_json, value_parser=lambda v: v,
                             literal_parser=_parse_json_literal)
    dt_scalar = ScalarType("DateTime", serializer=str, value_parser=_parse_datetime,
                           literal_parser=_parse_datetime_literal)
    node_iface = InterfaceType("Node", _resolve_type)
    query, mutation = QueryType(), MutationType()
    query.set_field("node", resolve_node)
    query.set_field("nodes", resolve_nodes)
    query.set_field("search", resolve_search)
    mutation.set_field("createNode", resolve_create)
    mutation.set_field("updateNode", resolve_update)
    mutation.set_field("deleteNode", resolve_delete)
    node_page = ObjectType("NodePage")
    node_page.set_field("items", _page_items)
    bindables = [json_scalar, dt_scalar, node_iface, query, mutation, node_page]
    for full, spec in model["types"].items():
        name = sdl_name(full)
        obj = ObjectType(name)
        obj.set_field("id", _node_id)
        obj.set_field("createdAt", _created)
        obj.set_field("updatedAt", _updated)
        for fname, f in spec["fields"].items():
            obj.set_field(fname, _relation(full, fname, f) if f["target"] else _field(fname))
        page = ObjectType(f"{name}_Page")
        page.set_field("items", _page_items)
        get, lst, add, update, delete = _typed(full)
        query.set_field(f"get_{name}", get)
        query.set_field(f"query_{name}", lst)
        mutation.set_field(f"add_{name}", add)
        mutation.set_field(f"update_{name}", update)
        mutation.set_field(f"delete_{name}", delete)
        bindables += [obj, page]
    schema = make_executable_schema(sdl, *bindables)
    cost_map = {"Query": {"node": {"complexity": 1}, "nodes": {"complexity": 1, "multipliers": ["first"]},
                          "search": {"complexity": 1, "multipliers": ["first"]}},
                "Mutation": {"createNode": {"complexity": 1}, "updateNode": {"complexity": 1},
                             "deleteNode": {"complexity": 1}}}
    for tname, entries in typed_cost.items():
        cost_map.setdefault(tname, {}).update(entries)
    return Built(version, model, schema, cost_map, print_schema(schema))
