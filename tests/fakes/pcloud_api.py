"""A local stand-in for the part of PCloud's public API the bundled photo apps call: the generic graph API (§7),
file content (§3, which a `files.read` grant opens to the app's token) and the core action `files.ensure-folder`
(§8), so the apps' WSGI handlers can be tested on their own. It parses and executes real GraphQL (graphql-core)
against in-memory nodes, scoped per bearer token's owner like the real graph, with errors carrying
`extensions.code` as §7 says. The milestone test (tests/integration/test_photos_milestone.py) runs the real stack.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from graphql import GraphQLError, GraphQLScalarType, build_schema, graphql_sync

from devtools.serve import ServedApp

SDL = """
scalar JSON
interface Node { id: ID!  type: String!  rev: Int!  createdAt: String!  updatedAt: String!  data: JSON! }
type GenericNode implements Node {
  id: ID!  type: String!  rev: Int!  createdAt: String!  updatedAt: String!  data: JSON!
}
type NodePage { items: [Node!]!  nextCursor: String }
type Query {
  node(id: ID!): Node
  nodes(type: String!, where: JSON, first: Int = 50, after: String): NodePage!
}
type Mutation {
  createNode(type: String!, data: JSON!): Node!
  updateNode(id: ID!, data: JSON!, rev: Int): Node!
  deleteNode(id: ID!): Boolean!
}
"""


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class FakePCloud(ServedApp):
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens: dict[str, str] = {}          # token -> owner
        self.files: dict[tuple[str, str], bytes] = {}   # (owner, file_id) -> bytes
        self.folders: set[tuple[str, str]] = set()
        self.nodes: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []     # (owner, what)
        self.unavailable = False
        # relation fields the graph checks (§7: a relation to a node of another type or user → BAD_USER_INPUT)
        self.relations: dict[str, dict[str, str]] = {
            "faces.Face": {"image": "photos.Image", "person": "faces.Person"},
            "faces.Person": {"cover": "faces.Face"},
            "photos.Image": {"faces": "faces.Face"}}
        # @inverse(field:) the graph keeps on the other side: (type, field) -> list field of the target
        self.inverses: dict[tuple[str, str], str] = {("faces.Face", "image"): "faces"}
        self._ids = itertools.count(1)
        self.schema = build_schema(SDL)
        json_scalar = self.schema.type_map["JSON"]
        assert isinstance(json_scalar, GraphQLScalarType)
        json_scalar.serialize = lambda v: v
        json_scalar.parse_value = lambda v: v
        self.schema.type_map["Node"].resolve_type = lambda *_: "GenericNode"
        self.app = self._make_app()

    # -- test helpers

    def user(self, owner: str) -> str:
        token = f"token-{owner}"
        self.tokens[token] = owner
        return token

    def put_file(self, owner: str, file_id: str, data: bytes) -> None:
        self.files[(owner, file_id)] = data

    def of_type(self, owner: str, type_: str) -> list[dict]:
        return [n for n in self.nodes.values() if n["owner"] == owner and n["type"] == type_]

    # -- the graph

    def _public(self, node: dict) -> dict:
        return {k: node[k] for k in ("id", "type", "rev", "createdAt", "updatedAt", "data")}

    def _mine(self, owner: str, node_id: str) -> dict | None:
        node = self.nodes.get(node_id)
        return node if node and node["owner"] == owner else None

    def _resolvers(self, owner: str) -> dict:
        def now():
            return datetime.now(UTC).isoformat()

        def node(_, __, id):
            found = self._mine(owner, id)
            return self._public(found) if found else None

        def nodes(_, __, type, where=None, first=50, after=None):
            if not 1 <= first <= 500:
                raise _error("first must be within 1..500", "BAD_USER_INPUT")
            found = sorted((n for n in self.nodes.values() if n["owner"] == owner and n["type"] == type
                            and all(n["data"].get(k) == v for k, v in (where or {}).items())), key=lambda n: n["seq"])
            start = int(after or 0)
            page = found[start:start + first]
            more = start + first < len(found)
            return {"items": [self._public(n) for n in page], "nextCursor": str(start + first) if more else None}

        def check(type_, data):
            if not isinstance(data, dict):
                raise _error("data must be an object", "BAD_USER_INPUT")
            for field, target_type in self.relations.get(type_, {}).items():
                value = data.get(field)
                for target in (value if isinstance(value, list) else [value]):
                    found = self._mine(owner, target) if target is not None else None
                    if target is not None and (found is None or found["type"] != target_type):
                        raise _error(f"{field}: no {target_type} {target}", "BAD_USER_INPUT")

        def relink(type_, node_id, old, new):
            for (source, field), back in self.inverses.items():
                if source != type_ or old.get(field) == new.get(field):
                    continue
                if old.get(field) in self.nodes:
                    target = self.nodes[old[field]]["data"]
                    target[back] = [i for i in target.get(back, []) if i != node_id]
                if new.get(field) in self.nodes:
                    target = self.nodes[new[field]]["data"]
                    target[back] = [*target.get(back, []), node_id]

        def create(_, __, type, data):
            check(type, data)
            with self.lock:
                seq = next(self._ids)
                doc = {"id": f"n{seq:06d}", "type": type, "rev": 1, "createdAt": now(), "updatedAt": now(),
                       "data": {k: v for k, v in data.items() if v is not None}, "owner": owner, "seq": seq}
                self.nodes[doc["id"]] = doc
                relink(type, doc["id"], {}, doc["data"])
            return self._public(doc)

        def update(_, __, id, data, rev=None):
            with self.lock:
                found = self._mine(owner, id)
                if not found:
                    raise _error("no such node", "NOT_FOUND")
                check(found["type"], data)
                if rev is not None and rev != found["rev"]:
                    raise _error("stale rev", "CONFLICT")
                before = dict(found["data"])
                for key, value in data.items():
                    if value is None:
                        found["data"].pop(key, None)
                    else:
                        found["data"][key] = value
                found["rev"] += 1
                found["updatedAt"] = now()
                relink(found["type"], id, before, found["data"])
            return self._public(found)

        def delete(_, __, id):
            with self.lock:
                found = self._mine(owner, id)
                if not found:
                    return False
                del self.nodes[id]
                relink(found["type"], id, found["data"], {})
                for (source, field), _back in self.inverses.items():  # the other side lets go of it too
                    for node in self.nodes.values():
                        if node["type"] == source and node["data"].get(field) == id:
                            node["data"].pop(field)
            return True

        return {"Query": {"node": node, "nodes": nodes},
                "Mutation": {"createNode": create, "updateNode": update, "deleteNode": delete}}

    def _make_app(self) -> Flask:
        app = Flask(__name__)

        def owner_or_none():
            auth = request.headers.get("Authorization", "")
            return self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None

        @app.before_request
        def gate():
            if self.unavailable:
                return jsonify({"error": {"code": "unavailable", "message": "down for the test"}}), 503
            if owner_or_none() is None:
                return jsonify({"error": {"code": "unauthorized", "message": "no token"}}), 401
            return None

        @app.post("/graph/v1/graphql")
        def graph():
            owner = owner_or_none()
            body = request.get_json()
            resolvers = self._resolvers(owner)

            def field_resolver(source, info, **args):
                parent = info.parent_type.name
                if parent in resolvers:
                    return resolvers[parent][info.field_name](source, info, **args)
                return source.get(info.field_name) if isinstance(source, dict) else None

            self.calls.append((owner, "graphql"))
            result = graphql_sync(self.schema, body["query"], variable_values=body.get("variables"),
                                  field_resolver=field_resolver)
            out = {"data": result.data}
            if result.errors:
                out["errors"] = [{"message": e.message, "extensions": e.extensions or {"code": "BAD_USER_INPUT"}}
                                 for e in result.errors]
            return jsonify(out)

        @app.get("/files/v1/nodes/<file_id>/content")
        def content(file_id):
            owner = owner_or_none()
            self.calls.append((owner, f"files.read {file_id}"))
            data = self.files.get((owner, file_id))
            if data is None:
                return jsonify({"error": {"code": "not_found", "message": "no such node"}}), 404
            return data, 200, {"Content-Type": "application/octet-stream"}

        @app.post("/apps/v1/actions/files/ensure-folder")
        def ensure_folder():
            owner = owner_or_none()
            path = (request.get_json() or {}).get("path")
            self.folders.add((owner, path))
            return jsonify({"execution": {"state": "done", "result": {"path": path}}})

        return app
