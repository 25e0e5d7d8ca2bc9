"""Running one GraphQL request for one caller: parse, check limits, execute, shape errors (no Flask here).

Every error carries `extensions.code` (BAD_USER_INPUT, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, CONFLICT, LIMIT);
a bad query is never an exception out of here. A database failure is raised (the boundary answers 503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from graphql import GraphQLError, GraphQLSyntaxError, execute, parse, specified_rules, validate
from graphql.language import OperationDefinitionNode, OperationType
from pymongo.errors import PyMongoError

from functions.graph import access, limits, nodes, schema
from functions.graph.errors import BadInput, GraphError, Limit
from runtime.errors import ApiError, BadRequest

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 100_000
CACHED_QUERY_CHARS = 8_192
STATIC_RULES = (*specified_rules, limits.DepthLimit, limits.AliasLimit)


class NodeLoader:
    """Per-request batching and cache of nodes by id: the dataloader that keeps relations free of N+1.

    When nodes arrive (a page, or a batch of relation targets) their relation ids are noted per (type, field);
    the first node asked for through a field loads every noted id of that field with one query. A list of 500
    images with their faces is therefore one query for the images and one per relation level.
    """

    def __init__(self, db, owner: str, model: dict):
        self.db, self.owner, self.model = db, owner, model
        self.cache: dict[str, dict | None] = {}
        self.pending: dict[tuple[str, str], set[str]] = {}
        self.queries = 0

    def seen(self, docs) -> None:
        types = self.model["types"]
        for doc in docs:
            if doc is None:
                continue
            self.cache.setdefault(doc["_id"], doc)
            spec = types.get(doc["type"])
            if spec is None:
                continue
            data = doc["data"]
            for fname, f in spec["fields"].items():
                if f["target"] and data.get(fname) is not None:
                    value = data[fname]
                    bucket = self.pending.setdefault((doc["type"], fname), set())
                    if isinstance(value, list):
                        bucket.update(value)
                    else:
                        bucket.add(value)

    def _fetch(self, ids) -> None:
        ids = [i for i in ids if isinstance(i, str) and i not in self.cache]
        if not ids:
            return
        self.queries += 1
        found = nodes.find_many(self.db, self.owner, ids)
        for i in ids:
            self.cache[i] = None
        for doc in found:
            self.cache[doc["_id"]] = doc
        self.seen(found)

    def load(self, type_name: str, fname: str, ids) -> list[dict | None]:
        missing = [i for i in ids if i not in self.cache]
        if missing:
            batch = self.pending.pop((type_name, fname), set())
            batch.update(missing)
            self._fetch(batch)
        return [self.cache.get(i) for i in ids]

    def one(self, node_id) -> dict | None:
        if not isinstance(node_id, str) or not nodes.ID_RE.match(node_id):
            return None
        if node_id not in self.cache:
            self._fetch([node_id])
        return self.cache.get(node_id)

    def many(self, ids) -> list[dict]:
        self._fetch(ids)
        return [self.cache[i] for i in ids if self.cache.get(i) is not None]


SearchFn = Callable[[str, list[str] | None, int, str | None], tuple[list[dict], str | None]]


def no_search(q, types, limit, cursor):
    return [], None


def index_search(settings, owner: str) -> SearchFn:
    """GraphQL `search` over the search index (functions/search), the caller's hits only."""
    from functions.search import service as search_service

    def run_search(q, types, limit, cursor):
        index = search_service.index_for(settings)
        try:
            return search_service.search(index, owner, q, types, limit, cursor)
        except BadRequest as exc:
            raise BadInput(exc.message, {"reason": exc.code}) from None

    return run_search


@dataclass
class GraphContext:
    db: object
    client: object
    model: dict
    ident: object
    search_fn: SearchFn = no_search
    after_writes: Callable[[object], None] | None = None
    nodes_out: int = 0
    loader: NodeLoader = field(init=False)

    def __post_init__(self):
        self.loader = NodeLoader(self.db, self.ident.user_id, self.model)

    @property
    def owner(self) -> str:
        return self.ident.user_id

    def seen(self, docs) -> None:
        self.loader.seen(docs)

    def count(self, n: int) -> None:
        """Nodes put into this response; past the limit the request stops with LIMIT."""
        self.nodes_out += n
        if self.nodes_out > limits.MAX_NODES:
            raise Limit(f"the response would hold more than {limits.MAX_NODES} nodes; ask for fewer (first)",
                        {"limit": "nodes", "maximum": limits.MAX_NODES})

    def search(self, q, types, limit, cursor):
        return self.search_fn(q, types, limit, cursor)

    def store(self) -> nodes.NodeStore:
        return nodes.NodeStore(self.db, self.client, self.model, self.ident, after_writes=self.after_writes)


def _err(message: str, code: str, **extra) -> dict:
    return {"message": message, "extensions": {"code": code, **extra}}


def _format(error: GraphQLError) -> dict:
    original = error.original_error
    if isinstance(original, GraphError):
        out = {"message": original.message, "extensions": {"code": original.code, **original.details}}
    elif original is not None and error.path and not isinstance(original, GraphQLError):
        out = {"message": "internal error; the request id in X-Request-Id helps us find it",
               "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    else:
        ext = dict(error.extensions or {})
        ext.setdefault("code", "BAD_USER_INPUT")
        out = {"message": error.message, "extensions": ext}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    return out


def run(db, client, ident, body, *, settings=None, search_fn: SearchFn | None = None,
        after_writes: Callable[[object], None] | None = None) -> dict:
    """One GraphQL-over-HTTP request body → `{"data", "errors"?}`.

    `search` answers from the search index of `settings` (or `search_fn`); with neither its pages are empty.
    """
    if ident is None:
        return {"data": None, "errors": [_err("sign in first", "UNAUTHENTICATED")]}
    if not isinstance(body, dict):
        return {"data": None, "errors": [_err("send a JSON object {query, variables?, operationName?}",
                                              "BAD_USER_INPUT")]}
    query, variables, operation = body.get("query"), body.get("variables"), body.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return {"data": None, "errors": [_err("query must be a non-empty string", "BAD_USER_INPUT")]}
    if len(query) > MAX_QUERY_CHARS:
        return {"data": None, "errors": [_err(f"query longer than {MAX_QUERY_CHARS} characters", "LIMIT",
                                              limit="size")]}
    if variables is not None and not isinstance(variables, dict):
        return {"data": None, "errors": [_err("variables must be a JSON object", "BAD_USER_INPUT")]}
    if operation is not None and not isinstance(operation, str):
        return {"data": None, "errors": [_err("operationName must be a string", "BAD_USER_INPUT")]}
    built = schema.current(db)
    cached = built.documents.get(query)
    if cached is None:
        try:
            document = parse(query, max_tokens=20_000)
        except GraphQLSyntaxError as exc:
            return {"data": None, "errors": [_format(exc)]}
        cached = (document, validate(built.schema, document, STATIC_RULES, max_errors=50))
        if len(query) <= CACHED_QUERY_CHARS:
            built.remember(query, cached)
    document, problems = cached
    if not problems:  # the cost depends on the variables (first: $n), so it is checked every time
        problems = validate(built.schema, document, [limits.cost_rule(built.cost_map, variables)])
    if problems:
        return {"data": None, "errors": [_format(e) for e in problems]}
    op = _operation(document, operation)
    if op is not None and op.operation is OperationType.MUTATION and not access.has_scope(ident, "graph.write"):
        return {"data": None, "errors": [_err("mutations need the graph.write scope", "FORBIDDEN",
                                              required="graph.write")]}
    if search_fn is None:
        search_fn = index_search(settings, ident.user_id) if settings is not None else no_search
    ctx = GraphContext(db, client, built.model, ident, search_fn=search_fn, after_writes=after_writes)
    result = execute(built.schema, document, context_value=ctx, variable_values=variables, operation_name=operation,
                     is_awaitable=_never_awaitable)
    if ctx.nodes_out > limits.MAX_NODES:
        # The whole response is refused, with one error, rather than a thousand nulls.
        return {"data": None, "errors": [_err(f"the response would hold more than {limits.MAX_NODES} nodes; "
                                              "ask for fewer (first)", "LIMIT", limit="nodes",
                                              maximum=limits.MAX_NODES)]}
    out: dict = {"data": result.data}
    if result.errors:
        for error in result.errors:
            if isinstance(error.original_error, (PyMongoError, ApiError)):
                raise error.original_error
            if error.path and error.original_error is not None and not isinstance(
                    error.original_error, (GraphError, GraphQLError)):
                log.error("graph resolver failed", exc_info=error.original_error)
        out["errors"] = [_format(e) for e in result.errors]
    return out


def _never_awaitable(_value) -> bool:
    """Every resolver here is synchronous: skip graphql-core's awaitable check on each of thousands of values."""
    return False


def _operation(document, name: str | None) -> OperationDefinitionNode | None:
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return ops[0] if len(ops) == 1 else None
    return next((o for o in ops if o.name and o.name.value == name), None)


def schema_sdl(db) -> str:
    return schema.current(db).sdl
