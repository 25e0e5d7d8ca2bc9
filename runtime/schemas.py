"""One schema source for REST bodies and /openapi.json: pydantic v2 models declared on each route.

A function declares its routes on an `Api` (which owns the Flask Blueprint). Each route names its
`operation_id`, its body model and its response models; the route's body is validated from that model before
the view runs (a failure is the JSON error shape, 400, with the code the model maps the field to), and the
gateway builds the OpenAPI 3.1 document from the same declarations — without building the function's app.

    api = Api("files")                                   # api.blueprint goes to app.register_blueprint
    @api.post("/files/v1/folders", operation_id="createFolder", summary="Create a folder",
              body=NewFolder, responses={201: Node, 404: "no such folder", 409: "name_taken"})
    def create_folder():
        new = body(NewFolder)                            # the validated model instance

Why not spectree / flask-openapi3: both generate the document from a built Flask app's url_map and answer
validation errors in their own shape (422, a list); the gateway documents functions it proxies to without
building them, and every error here is `{"error": {"code", "message", "details"}}` with a contract code.
pydantic does the validation and the JSON Schema (2020-12, what OpenAPI 3.1 uses); this module is the glue.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar, TypeVar

from flask import Blueprint, g, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from runtime.errors import BadRequest

REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """Base of request bodies: strict JSON types (no "5" for 5, no true for 1); unknown fields are ignored.

    `error_codes` maps a field path to the error code a bad value gets, so a body that fails the model says
    what the service would have said (`{"name": "invalid_name", "blocks.*.hash": "invalid_hash"}`; `*` is a
    list index; the longest matching prefix wins; unmatched fields get `invalid_request`).
    """

    model_config = ConfigDict(strict=True)
    error_codes: ClassVar[dict[str, str]] = {}


def omittable(**field_kwargs) -> Any:
    """A field that may be left out but is never null: `parent_id: str = omittable(description=...)`."""

    def drop_default(schema: dict) -> None:
        schema.pop("default", None)

    return Field(None, json_schema_extra=drop_default, **field_kwargs)


class Query(BaseModel):
    """Base of query-string models: values arrive as text, so types are coerced ("5" → 5)."""

    error_codes: ClassVar[dict[str, str]] = {}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class Error(BaseModel):
    """The one JSON error shape (CONTRACT §1)."""

    error: ErrorDetail


class BodyInvalid(BadRequest):
    """A body (or query) the model refused; `details.field` names the first bad field, `details.problems` all."""


@dataclass
class Operation:
    method: str
    rule: str  # the Flask rule, /files/v1/nodes/<node_id>
    operation_id: str
    summary: str
    description: str | None = None
    body: type[BaseModel] | dict | None = None  # a model (validated), or a raw requestBody dict (documented only)
    media: str = JSON
    body_required: bool = True
    validate: bool = True
    query: type[Query] | None = None
    parameters: list[dict] = field(default_factory=list)
    responses: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    security: list[dict] | None = None  # None: the gateway derives it from the routing table (auth policy, scopes)
    extra_models: tuple[type[BaseModel], ...] = ()  # models referenced by hand (WithJsonSchema refs)

    @property
    def path(self) -> str:
        return flask_rule_to_path(self.rule)


class Api:
    """The operations of one function, and the Blueprint they are served from."""

    def __init__(self, name: str, tag: str | None = None, import_name: str | None = None):
        self.name = name
        self.tag = tag or name
        self.blueprint = Blueprint(name, import_name or name)
        self.operations: list[Operation] = []

    def route(self, rule: str, methods: Iterable[str], *, operation_id: str, summary: str, **options) -> Callable:
        """Register `rule` for `methods`; with several methods each operationId gets the method appended."""
        methods = [m.upper() for m in methods]
        tags = list(options.pop("tags", None) or [self.tag])

        def decorate(view: Callable) -> Callable:
            for method in methods:
                op_id = operation_id if len(methods) == 1 else operation_id + method.capitalize()
                op = Operation(method, rule, op_id, summary, tags=tags, **options)
                if any(o.operation_id == op_id for o in self.operations):
                    raise ValueError(f"operationId {op_id!r} is used twice in {self.name}")
                self.operations.append(op)
            self.blueprint.add_url_rule(rule, view.__name__, _validating(view, self._ops_for(rule, methods)),
                                        methods=methods)
            return view

        return decorate

    def _ops_for(self, rule: str, methods: list[str]) -> dict[str, Operation]:
        return {o.method: o for o in self.operations if o.rule == rule and o.method in methods}

    def get(self, rule: str, **kw) -> Callable:
        return self.route(rule, ["GET"], **kw)

    def post(self, rule: str, **kw) -> Callable:
        return self.route(rule, ["POST"], **kw)

    def put(self, rule: str, **kw) -> Callable:
        return self.route(rule, ["PUT"], **kw)

    def patch(self, rule: str, **kw) -> Callable:
        return self.route(rule, ["PATCH"], **kw)

    def delete(self, rule: str, **kw) -> Callable:
        return self.route(rule, ["DELETE"], **kw)


# --- request side --------------------------------------------------------------------------------------------
def _validating(view: Callable, ops: dict[str, Operation]) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        op = ops.get(request.method) or ops.get("GET")  # HEAD runs the GET view
        if op is not None and op.validate and isinstance(op.body, type):
            g.pcloud_body = _read_body(op)
        return view(*args, **kwargs)

    return wrapper


def _read_body(op: Operation) -> BaseModel | None:
    from runtime.app import json_body

    if not op.body_required and not request.get_data(cache=True):
        return None
    data = request.form.to_dict() if op.media == FORM else json_body()
    return validate(op.body, data)


def validate(model: type[M], data: Any, whole: str = "body") -> M:
    """`model` from `data`, or BodyInvalid (400) naming the field with the model's error code for it
    (`whole` names the data itself when the problem is not one field's)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(model, exc, whole) from None


def body(model: type[M] | None = None) -> M:
    """The current request's validated body (the route's `body=` model); None when optional and absent."""
    found = g.get("pcloud_body")
    if model is not None and found is not None and not isinstance(found, model):
        raise TypeError(f"this route's body is {type(found).__name__}, not {model.__name__}")
    return found


def query(model: type[M]) -> M:
    """The query string validated by `model` (a `Query`): BodyInvalid names the parameter."""
    return validate(model, request.args.to_dict(), whole="query")


_UNION_TAG = re.compile(r"^(str|int|float|bool|none|dict|list|bytes|[A-Z]\w*)$|[\[\-]")


def _field_path(loc: tuple, whole: str) -> str:
    """pydantic puts union member tags (`str`, `int`, a model name) into `loc`; the field path leaves them out."""
    parts = [str(p) for p in loc if isinstance(p, int) or not _UNION_TAG.search(str(p))]
    return ".".join(parts) or whole


def _code_for(model: type[BaseModel], path: str) -> str:
    codes = getattr(model, "error_codes", {}) or {}
    parts = path.split(".")
    best, best_len = "invalid_request", -1
    for pattern, code in codes.items():
        want = pattern.split(".")
        if len(want) <= len(parts) and all(w in ("*", p) for w, p in zip(want, parts, strict=False)):
            if len(want) > best_len:
                best, best_len = code, len(want)
    return best


def _invalid(model: type[BaseModel], exc: ValidationError, whole: str) -> BodyInvalid:
    problems: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        problems.setdefault(_field_path(err["loc"], whole), []).append(err["msg"])
    path, messages = next(iter(problems.items()))
    message = f"{path}: {' or '.join(dict.fromkeys(m[0].lower() + m[1:] for m in messages))}"
    details: dict[str, Any] = {"field": path,
                               "problems": [{"field": p, "message": "; ".join(dict.fromkeys(ms))}
                                            for p, ms in problems.items()]}
    index = next((int(p) for p in path.split(".") if p.isdigit()), None)
    if index is not None:
        details["index"] = index
    return BodyInvalid(message, code=_code_for(model, path), details=details)


# --- document side -------------------------------------------------------------------------------------------
class _Schemas(GenerateJsonSchema):
    """pydantic's JSON Schema without a `title` on every field (generators would name inline types after them)."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

_RULE_VAR = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def flask_rule_to_path(rule: str) -> str:
    return _RULE_VAR.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_parameters(rule: str) -> list[dict]:
    out = []
    for m in _RULE_VAR.finditer(rule):
        converter = m.group(1) or "string"
        schema = {"int": {"type": "integer"}, "float": {"type": "number"}}.get(converter, {"type": "string"})
        out.append({"name": m.group(2), "in": "path", "required": True, "schema": schema})
    return out


def _response_models(op: Operation) -> list[type[BaseModel]]:
    out = []
    for value in op.responses.values():
        model = value[1] if isinstance(value, tuple) else value
        if isinstance(model, type) and issubclass(model, BaseModel):
            out.append(model)
    return out


def build(operations: Iterable[Operation], security_for: Callable[[Operation], list | None] = lambda op: None,
          ) -> tuple[dict, dict]:
    """(paths, component schemas) of `operations`; every model lands in components/schemas by class name."""
    operations = list(operations)
    ids = [op.operation_id for op in operations]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"operationIds used more than once: {', '.join(dupes)}")
    wanted: list[tuple[type[BaseModel], str]] = [(Error, "serialization")]
    for op in operations:
        if isinstance(op.body, type):
            wanted.append((op.body, "validation"))
        wanted += [(m, "serialization") for m in _response_models(op)]
        wanted += [(m, "validation") for m in op.extra_models]
    unique = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(unique, ref_template=REF_TEMPLATE, schema_generator=_Schemas)
    schemas = dict(top.get("$defs", {}))

    def ref(model, mode) -> dict:
        return refs[(model, mode)]

    paths: dict[str, dict] = {}
    for op in operations:
        doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": op.tags}
        if op.description:
            doc["description"] = op.description
        params = _path_parameters(op.rule)
        if op.query is not None:
            params += _query_parameters(op.query, schemas)
        declared = {(p["name"], p["in"]) for p in op.parameters}  # a declared parameter replaces a derived one
        params = [p for p in params if (p["name"], p["in"]) not in declared] + op.parameters
        if params:
            doc["parameters"] = params
        if isinstance(op.body, type):
            doc["requestBody"] = {"required": op.body_required,
                                  "content": {op.media: {"schema": ref(op.body, "validation")}}}
        elif isinstance(op.body, dict):
            doc["requestBody"] = op.body
        doc["responses"] = {str(status): _response(status, value, ref) for status, value in op.responses.items()}
        if isinstance(op.body, type) and op.validate and 400 not in op.responses:
            doc["responses"]["400"] = _response(400, "the body does not match its schema (details.field)", ref)
        security = op.security if op.security is not None else security_for(op)
        if security is not None:
            doc["security"] = security
        paths.setdefault(op.path, {})[op.method.lower()] = doc
    return paths, schemas


def _query_parameters(model: type[Query], schemas: dict) -> list[dict]:
    """One parameter per field; a query model is no component of its own (generators would make it a class)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=_Schemas)
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        param = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        prop.pop("title", None)
        param["schema"] = prop
        out.append(param)
    return out


def _response(status: int, value, ref) -> dict:
    """A response from a model, a description, (description, model|None) or a raw OpenAPI response dict."""
    if isinstance(value, dict):
        return value
    description, model = (value if isinstance(value, tuple) else
                          (None, value) if isinstance(value, type) else (value, None))
    if model is None and status >= 400:
        model = Error
    if description is None:
        doc = (model.__doc__ or "").strip().splitlines() if model is not None else []
        description = doc[0] if doc and model is not Error else HTTPStatus(status).phrase
    out: dict[str, Any] = {"description": description}
    if model is not None:
        out["content"] = {JSON: {"schema": ref(model, "serialization")}}
    return out
