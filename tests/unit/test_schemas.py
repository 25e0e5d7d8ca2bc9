"""runtime.schemas: one model validates the body (contract error shape and codes) and documents the route."""

from __future__ import annotations

from typing import Literal

import pytest
from flask import jsonify
from openapi_spec_validator import validate as validate_spec
from pydantic import BaseModel, Field

from runtime.app import function_app
from runtime.schemas import Api, Body, Operation, body, build
from runtime.settings import load_settings


class Block(Body):
    hash: str = Field(pattern="^[0-9a-f]{64}$")
    size: int


class NewThing(Body):
    error_codes = {"name": "invalid_name", "blocks.*.hash": "invalid_hash", "blocks": "invalid_blocks"}
    name: str
    kind: Literal["a", "b"] = "a"
    mtime: str | int | float | None = None
    blocks: list[Block] = []


class Thing(BaseModel):
    """The thing as stored."""

    id: str
    name: str


api = Api("things", import_name=__name__)


@api.post("/things/v1/<thing_id>", operation_id="createThing", summary="Make a thing", body=NewThing,
          responses={201: Thing, 409: "name_taken"})
def create(thing_id: str):
    new = body(NewThing)
    return jsonify({"id": thing_id, "name": new.name, "blocks": len(new.blocks)}), 201


@api.route("/things/v1/<thing_id>/both", ["GET", "POST"], operation_id="both", summary="Two methods, one view",
           responses={200: Thing}, tags=["twice"])
def both(thing_id: str):
    return jsonify({"id": thing_id, "name": "x"})


@pytest.fixture()
def http(tmp_path):
    app = function_app(__name__, load_settings({"PCLOUD_DATA_DIR": str(tmp_path)}), name="things")
    app.register_blueprint(api.blueprint)
    return app.test_client()


def test_a_valid_body_reaches_the_view_as_the_model(http):
    r = http.post("/things/v1/t1", json={"name": "n", "blocks": [{"hash": "a" * 64, "size": 3}], "extra": 1})
    assert r.status_code == 201 and r.json == {"id": "t1", "name": "n", "blocks": 1}


@pytest.mark.parametrize(("payload", "code", "field"), [
    ({}, "invalid_name", "name"),
    ({"name": 5}, "invalid_name", "name"),
    ({"name": "n", "kind": "c"}, "invalid_request", "kind"),
    ({"name": "n", "mtime": True}, "invalid_request", "mtime"),
    ({"name": "n", "blocks": {"hash": "x"}}, "invalid_blocks", "blocks"),
    ({"name": "n", "blocks": [{"hash": "a" * 64, "size": 1}, {"hash": "XYZ", "size": 1}]}, "invalid_hash",
     "blocks.1.hash"),
    ({"name": "n", "blocks": [{"hash": "a" * 64, "size": "1"}]}, "invalid_blocks", "blocks.0.size"),
])
def test_a_body_the_model_refuses_is_a_400_naming_the_field(http, payload, code, field):
    r = http.post("/things/v1/t1", json=payload)
    assert r.status_code == 400
    err = r.json["error"]
    assert err["code"] == code and err["details"]["field"] == field and err["message"].startswith(field + ":")
    assert {"field": field, "message": err["details"]["problems"][0]["message"]} == err["details"]["problems"][0]


def test_not_json_keeps_the_invalid_json_code(http):
    assert http.post("/things/v1/t1", data="{nope", content_type="application/json").json["error"]["code"] == \
        "invalid_json"
    assert http.post("/things/v1/t1", json=[1]).json["error"]["code"] == "invalid_json"


def test_one_view_on_two_methods_gets_two_operation_ids(http):
    assert http.get("/things/v1/x/both").status_code == 200 and http.post("/things/v1/x/both").status_code == 200
    ids = {o.operation_id for o in api.operations}
    assert {"bothGet", "bothPost"} <= ids and "both" not in ids
    assert {tuple(o.tags) for o in api.operations if o.operation_id.startswith("both")} == {("twice",)}
    assert next(o for o in api.operations if o.operation_id == "createThing").tags == ["things"]


def test_the_document_comes_from_the_same_models():
    paths, schemas = build(api.operations, security_for=lambda op: [{"bearer": []}])
    op = paths["/things/v1/{thing_id}"]["post"]
    assert op["operationId"] == "createThing"
    assert op["parameters"] == [{"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewThing"}
    assert op["responses"]["201"]["description"] == "The thing as stored."
    assert op["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "400" in op["responses"] and op["security"] == [{"bearer": []}]
    assert schemas["Block"]["properties"]["hash"]["pattern"] == "^[0-9a-f]{64}$"
    assert "title" not in schemas["NewThing"]["properties"]["name"]
    validate_spec({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
                   "components": {"schemas": schemas}})


def test_operation_ids_must_be_unique():
    ops = [Operation("GET", "/a", "same", "a"), Operation("GET", "/b", "same", "b")]
    with pytest.raises(ValueError, match="same"):
        build(ops)
    with pytest.raises(ValueError, match="twice"):
        api.get("/things/v1/again", operation_id="createThing", summary="dup")(lambda: None)


class Options(Body):
    verbose: bool = False


@api.post("/things/v1/options", operation_id="setOptions", summary="An optional body", body=Options,
          body_required=False, responses={200: "the options"})
def set_options():
    got = body(Options)
    return jsonify({"verbose": None if got is None else got.verbose})


def test_an_optional_body_may_be_absent_but_is_checked_when_sent(http):
    assert http.post("/things/v1/options").json == {"verbose": None}
    assert http.post("/things/v1/options", json={}).json == {"verbose": False}
    assert http.post("/things/v1/options", json={"verbose": True}).json == {"verbose": True}
    r = http.post("/things/v1/options", json={"verbose": "yes"})
    assert r.status_code == 400 and r.json["error"]["details"]["field"] == "verbose"
