"""Graph nodes: one collection for every type, each node owned by one user, every change with its event.

Documents of `graph_nodes` (owned here): `{_id, owner, type: "ns.Type", rev, data: {field: value}, created_at,
updated_at}`; a relation is stored as the target's id (a list of ids for a list field). Every mutation runs in one
MongoDB transaction with its `graph.node.*` event (and the events of the nodes whose `@inverse` side it
changed), so a mutation that fails or dies leaves neither node nor event.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument

from functions.graph import access
from functions.graph.errors import BadInput, Conflict, NotFound
from runtime import events
from runtime.ids import iso, new_id, utcnow
from runtime.mongo import register_indexes, transaction

MAX_FIELD_INDEXES = 40
MAX_FIRST = 500
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ID_RE = re.compile(r"^[0-9a-f]{24}$")


@register_indexes
def _indexes(db) -> None:
    db.graph_nodes.create_index([("owner", ASCENDING), ("type", ASCENDING), ("_id", ASCENDING)])


def ensure_field_indexes(db, names: list[str]) -> None:
    """`where` on a declared field uses (owner, type, data.<field>): one index per field name, shared by types."""
    existing = db.graph_nodes.index_information()
    have = {tuple(k for k, _ in spec["key"]) for spec in existing.values()}
    room = MAX_FIELD_INDEXES - sum(1 for keys in have if len(keys) == 3 and keys[2].startswith("data."))
    for name in names:
        key = ("owner", "type", f"data.{name}")
        if key in have:
            continue
        if room <= 0:
            return  # past the cap a where still works, scanning the owner's nodes of that type
        db.graph_nodes.create_index([(k, ASCENDING) for k in key])
        room -= 1


def purge_types(db, type_names: list[str], search_model: dict | None = None, batch: int = 200) -> int:
    """Delete every node of these types, each with its `graph.node.deleted` event, a batch per transaction."""
    if not type_names:
        return 0
    purged = 0
    while True:
        docs = list(db.graph_nodes.find({"type": {"$in": type_names}}).sort("_id", ASCENDING).limit(batch))
        if not docs:
            return purged

        def write(session, docs=docs):
            db.graph_nodes.delete_many({"_id": {"$in": [d["_id"] for d in docs]}}, session=session)
            for doc in docs:
                events.append(db, owner=doc["owner"], type="graph.node.deleted", subject=doc["_id"],
                              node_type=doc["type"], session=session,
                              data={"node": public(doc), "changed": sorted(doc["data"]),
                                    "search": search_texts(search_model or {"types": {}}, doc["type"],
                                                           doc["data"])})

        transaction(db.client, write)
        purged += len(docs)


def drop_fields(db, fields_by_type: dict[str, list[str]]) -> None:
    """Remove fields a removed namespace had added to other namespaces' types (`extend type`)."""
    for type_name, names in fields_by_type.items():
        if names:
            db.graph_nodes.update_many({"type": type_name}, {"$unset": {f"data.{n}": "" for n in names}})


def public(doc: dict) -> dict:
    """A node as the generic API and events show it."""
    return {"id": doc["_id"], "type": doc["type"], "rev": doc["rev"], "createdAt": iso(doc["created_at"]),
            "updatedAt": iso(doc["updated_at"]), "data": doc["data"]}


def search_texts(model: dict, type_name: str, data: dict) -> dict:
    """`{field: text}` of the type's @search fields (what the search indexer indexes)."""
    out = {}
    fields = model["types"].get(type_name, {}).get("fields", {})
    for name, spec in fields.items():
        if spec.get("search") and data.get(name) is not None:
            value = data[name]
            out[name] = " ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return out


# ---------------------------------------------------------------------------------------------------------
# Checking data against a type


MAX_JSON_DEPTH = 32


def _json(value, label: str, depth: int = 0):
    """A JSON value the database stores as given: bounded nesting, object keys without NUL or a leading `$`."""
    if depth > MAX_JSON_DEPTH:
        raise BadInput(f"{label}: JSON nested deeper than {MAX_JSON_DEPTH} levels", {"field": label})
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key or key.startswith("$"):
                raise BadInput(f"{label}: JSON object keys may not start with $ or contain NUL ({_short(key)})",
                               {"field": label})
            _json(item, label, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json(item, label, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{label}: numbers must be finite", {"field": label})
    return value


def _scalar(kind: str, value, label: str):
    if kind == "JSON":
        return _json(value, label)
    if kind in ("String", "ID"):
        if isinstance(value, str):
            return value
        if kind == "ID" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    elif kind == "Int":
        if isinstance(value, int) and not isinstance(value, bool):
            if INT_MIN <= value <= INT_MAX:
                return value
            raise BadInput(f"{label}: {value} does not fit a 32-bit Int", {"field": label})
    elif kind == "Float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) if isinstance(value, float) else value
    elif kind == "Boolean":
        if isinstance(value, bool):
            return value
    elif kind == "DateTime":
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return value
            except ValueError:
                pass
        raise BadInput(f"{label}: expected an ISO 8601 DateTime string, got {value!r}", {"field": label})
    raise BadInput(f"{label}: expected {kind}, got {type(value).__name__} {_short(value)}", {"field": label})


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _relation_id(value, label: str) -> str:
    if isinstance(value, str) and ID_RE.match(value):
        return value
    raise BadInput(f"{label}: expected a node id, got {_short(value)}", {"field": label})


def check_value(spec: dict, value, label: str):
    """The stored form of `value` for a field, or BadInput naming the field."""
    if spec["list"]:
        if not isinstance(value, list):
            raise BadInput(f"{label}: expected a list", {"field": label})
        if spec["target"]:
            out = []
            for v in value:
                rid = _relation_id(v, label)
                if rid not in out:
                    out.append(rid)
            return out
        if any(v is None for v in value):
            raise BadInput(f"{label}: lists hold no nulls", {"field": label})
        return [_scalar(spec["kind"], v, label) for v in value]
    if spec["target"]:
        return _relation_id(value, label)
    return _scalar(spec["kind"], value, label)


def check_data(model: dict, type_name: str, data, *, partial: bool) -> tuple[dict, list[str]]:
    """(fields to set, fields to remove); unknown fields, wrong scalars and missing required fields refused."""
    if not isinstance(data, dict):
        raise BadInput("data must be a JSON object")
    fields = model["types"][type_name]["fields"]
    clean, removed = {}, []
    for name, value in data.items():
        spec = fields.get(name)
        label = f"{type_name}.{name}"
        if spec is None:
            raise BadInput(f"{label}: unknown field (known: {', '.join(sorted(fields)) or 'none'})",
                           {"field": label})
        if value is None:
            if spec["required"]:
                raise BadInput(f"{label} is required and cannot be removed", {"field": label})
            if partial:
                removed.append(name)
            continue
        clean[name] = check_value(spec, value, label)
    if not partial:
        missing = [n for n, s in fields.items() if s["required"] and n not in clean]
        if missing:
            raise BadInput(f"{type_name}: required field(s) missing: {', '.join(missing)}", {"fields": missing})
    return clean, removed


def where_filter(model: dict, type_name: str, where) -> dict:
    """`where` (AND of equalities on declared fields) as a MongoDB filter on data."""
    if where is None:
        return {}
    if not isinstance(where, dict):
        raise BadInput("where must be a JSON object of field: value equalities")
    fields = model["types"][type_name]["fields"]
    out = {}
    for name, value in where.items():
        spec = fields.get(name)
        if spec is None:
            raise BadInput(f"where: {type_name} has no field {name}", {"field": name})
        if spec["kind"] == "JSON":
            raise BadInput(f"where: {type_name}.{name} is JSON and cannot be compared", {"field": name})
        label = f"where.{name}"
        if value is None:
            out[f"data.{name}"] = None
        elif spec["target"]:
            out[f"data.{name}"] = _relation_id(value, label)
        else:
            out[f"data.{name}"] = _scalar(spec["kind"], value, label)
    return out


# ---------------------------------------------------------------------------------------------------------
# Reading


def check_first(first) -> int:
    if first is None:
        return 50
    if not 1 <= first <= MAX_FIRST:
        raise BadInput(f"first must be between 1 and {MAX_FIRST}", {"argument": "first"})
    return first


def find_page(db, owner: str, type_name: str, query: dict, first: int, after: str | None) -> tuple[list, str | None]:
    flt = {"owner": owner, "type": type_name, **query}
    if after:
        if not ID_RE.match(after):
            raise BadInput("after: not a cursor this API returned", {"argument": "after"})
        flt["_id"] = {"$gt": after}
    docs = list(db.graph_nodes.find(flt).sort("_id", ASCENDING).limit(first + 1))
    more = len(docs) > first
    docs = docs[:first]
    return docs, (docs[-1]["_id"] if more and docs else None)


def find_one(db, owner: str, node_id) -> dict | None:
    if not isinstance(node_id, str) or not ID_RE.match(node_id):
        return None
    return db.graph_nodes.find_one({"_id": node_id, "owner": owner})


def find_many(db, owner: str, ids) -> list[dict]:
    return list(db.graph_nodes.find({"_id": {"$in": list(ids)}, "owner": owner}))


# ---------------------------------------------------------------------------------------------------------
# Writing


@dataclass
class NodeStore:
    """Mutations for one caller: owner = the calling user (an app invocation acts for its user)."""

    db: object
    client: object
    model: dict
    ident: object
    after_writes: Callable[[object], None] | None = None  # after_writes(session): inside the transaction, all written

    @property
    def owner(self) -> str:
        return self.ident.user_id

    def _type(self, type_name) -> dict:
        if not isinstance(type_name, str) or type_name not in self.model["types"]:
            raise BadInput(f"unknown type {type_name!r}", {"type": type_name})
        return self.model["types"][type_name]

    def _relations(self, type_name: str, data: dict) -> dict[str, list[str]]:
        fields = self.model["types"][type_name]["fields"]
        out = {}
        for name, value in data.items():
            spec = fields.get(name)
            if spec and spec["target"]:
                out[name] = value if isinstance(value, list) else [value]
        return out

    def _check_targets(self, type_name: str, data: dict, session) -> None:
        """Every relation names a node of the declared type owned by the caller (else nothing is written)."""
        rels = self._relations(type_name, data)
        wanted = {i for ids in rels.values() for i in ids}
        if not wanted:
            return
        found = {d["_id"]: d["type"] for d in self.db.graph_nodes.find(
            {"_id": {"$in": list(wanted)}, "owner": self.owner}, {"type": 1}, session=session)}
        fields = self.model["types"][type_name]["fields"]
        for name, ids in rels.items():
            target = fields[name]["target"]
            access.require(self.ident, self.model, target, "read")
            for rid in ids:
                if found.get(rid) != target:
                    raise BadInput(f"{type_name}.{name}: no node {rid} of type {target}",
                                   {"field": f"{type_name}.{name}", "id": rid})

    def _emit(self, kind: str, doc: dict, changed: list[str], session) -> None:
        events.append(self.db, owner=self.owner, type=f"graph.node.{kind}", subject=doc["_id"],
                        node_type=doc["type"], cause=access.cause_of(self.ident), session=session,
                        data={"node": public(doc), "changed": changed,
                              "search": search_texts(self.model, doc["type"], doc["data"])})

    def _inverse(self, type_name: str, node_id: str, old: dict, new: dict, session) -> None:
        """Keep the other side of every @inverse relation whose targets changed."""
        fields = self.model["types"][type_name]["fields"]
        for name, spec in fields.items():
            inv = spec.get("inverse")
            if not inv:
                continue
            before = _ids(old.get(name))
            after = _ids(new.get(name))
            for target in [t for t in after if t not in before]:
                self._link(spec["target"], target, inv, type_name, name, node_id, session)
            for target in [t for t in before if t not in after]:
                self._unlink(spec["target"], target, inv, node_id, session)

    def _link(self, ttype: str, tid: str, tfield: str, stype: str, sfield: str, sid: str, session) -> None:
        tspec = self.model["types"][ttype]["fields"][tfield]
        now = utcnow()
        if tspec["list"]:
            op = {"$addToSet": {f"data.{tfield}": sid}, "$set": {"updated_at": now}, "$inc": {"rev": 1}}
            doc = self.db.graph_nodes.find_one_and_update(
                {"_id": tid, "owner": self.owner, f"data.{tfield}": {"$ne": sid}}, op, session=session,
                return_document=ReturnDocument.AFTER)
        else:
            doc = self.db.graph_nodes.find_one_and_update(
                {"_id": tid, "owner": self.owner, f"data.{tfield}": {"$ne": sid}},
                {"$set": {f"data.{tfield}": sid, "updated_at": now}, "$inc": {"rev": 1}}, session=session,
                return_document=ReturnDocument.BEFORE)
            if doc is not None:
                previous = doc["data"].get(tfield)
                if previous and previous != sid:
                    # One-to-one: the node the target pointed back to no longer points at it.
                    self._unlink(stype, previous, sfield, tid, session)
                doc = self.db.graph_nodes.find_one({"_id": tid}, session=session)
        if doc is not None:
            self._emit("updated", doc, [tfield], session)

    def _unlink(self, ttype: str, tid: str, tfield: str, sid: str, session) -> None:
        tspec = self.model["types"].get(ttype, {}).get("fields", {}).get(tfield)
        if tspec is None:
            return
        now = utcnow()
        if tspec["list"]:
            op = {"$pull": {f"data.{tfield}": sid}, "$set": {"updated_at": now}, "$inc": {"rev": 1}}
        else:
            op = {"$unset": {f"data.{tfield}": ""}, "$set": {"updated_at": now}, "$inc": {"rev": 1}}
        doc = self.db.graph_nodes.find_one_and_update({"_id": tid, "owner": self.owner, f"data.{tfield}": sid}, op,
                                                      session=session, return_document=ReturnDocument.AFTER)
        if doc is not None:
            self._emit("updated", doc, [tfield], session)

    def _run(self, fn):
        def body(session):
            result = fn(session)
            if self.after_writes is not None:
                self.after_writes(session)
            return result

        return transaction(self.client, body)

    def create(self, type_name, data) -> dict:
        self._type(type_name)
        access.require(self.ident, self.model, type_name, "write")
        clean, _ = check_data(self.model, type_name, data, partial=False)

        def write(session):
            self._check_targets(type_name, clean, session)
            now = utcnow()
            doc = {"_id": new_id(), "owner": self.owner, "type": type_name, "rev": 1, "data": clean,
                   "created_at": now, "updated_at": now}
            self.db.graph_nodes.insert_one(doc, session=session)
            self._inverse(type_name, doc["_id"], {}, clean, session)
            self._emit("created", doc, sorted(clean), session)
            return doc

        return self._run(write)

    def update(self, node_id, data, rev: int | None = None) -> dict:
        current = find_one(self.db, self.owner, node_id)
        if current is None or current["type"] not in self.model["types"]:
            raise NotFound(f"no node {node_id}", {"id": node_id})
        type_name = current["type"]
        if not isinstance(data, dict):
            raise BadInput("data must be a JSON object")
        access.require(self.ident, self.model, type_name, "read")
        access.require_write(self.ident, self.model, type_name, list(data))
        clean, removed = check_data(self.model, type_name, data, partial=True)

        def write(session):
            cur = self.db.graph_nodes.find_one({"_id": node_id, "owner": self.owner}, session=session)
            if cur is None:
                raise NotFound(f"no node {node_id}", {"id": node_id})
            if rev is not None and cur["rev"] != rev:
                raise Conflict(f"node {node_id} is at rev {cur['rev']}, not {rev}",
                               {"rev": cur["rev"], "node": public(cur)})
            self._check_targets(type_name, clean, session)
            new_data = {k: v for k, v in {**cur["data"], **clean}.items() if k not in removed}
            changed = sorted(k for k in set(cur["data"]) | set(new_data) if cur["data"].get(k, _GONE)
                             != new_data.get(k, _GONE))
            now = utcnow()
            res = self.db.graph_nodes.update_one(
                {"_id": node_id, "owner": self.owner, "rev": cur["rev"]},
                {"$set": {"data": new_data, "updated_at": now}, "$inc": {"rev": 1}}, session=session)
            if res.matched_count != 1:
                raise Conflict(f"node {node_id} changed meanwhile; read it again", {"id": node_id})
            doc = {**cur, "data": new_data, "updated_at": now, "rev": cur["rev"] + 1}
            self._inverse(type_name, node_id, cur["data"], new_data, session)
            self._emit("updated", doc, changed, session)
            return doc

        return self._run(write)

    def delete(self, node_id) -> bool:
        current = find_one(self.db, self.owner, node_id)
        if current is None or current["type"] not in self.model["types"]:
            raise NotFound(f"no node {node_id}", {"id": node_id})
        access.require(self.ident, self.model, current["type"], "write")

        def write(session):
            cur = self.db.graph_nodes.find_one({"_id": node_id, "owner": self.owner}, session=session)
            if cur is None:
                raise NotFound(f"no node {node_id}", {"id": node_id})
            self.db.graph_nodes.delete_one({"_id": node_id, "owner": self.owner}, session=session)
            self._inverse(cur["type"], node_id, cur["data"], {}, session)
            self._emit("deleted", cur, sorted(cur["data"]), session)
            return True

        return self._run(write)


_GONE = object()


def _ids(value) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
