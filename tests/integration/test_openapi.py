"""/openapi.json as the gateway serves it: a valid OpenAPI 3.1 document covering CONTRACT §1-§6 with an
operationId on every operation, generated from the same models the routes validate bodies with, and good enough
for a client generator (openapi-python-client) whose client then talks to the running gateway."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from gateway.openapi import function_operations
from gateway.routing import FUNCTIONS

# CONTRACT.md §1-§6, verb and path as written there ({id} stands for any path parameter name)
CONTRACT_OPERATIONS = [
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
    ("get", "/auth/login/{provider}"), ("get", "/auth/callback/{provider}"),
    ("get", "/.well-known/openid-configuration"), ("get", "/auth/jwks.json"), ("get", "/auth/authorize"),
    ("post", "/auth/token"), ("post", "/auth/revoke"), ("get", "/auth/userinfo"),
    ("get", "/auth/logout"), ("post", "/auth/logout"),
    ("post", "/mobile/v1/auth/google"), ("post", "/mobile/v1/auth/facebook"),
    ("get", "/files/v1/root"), ("get", "/files/v1/nodes/{id}"), ("get", "/files/v1/nodes/{id}/children"),
    ("post", "/files/v1/folders"), ("patch", "/files/v1/nodes/{id}"), ("delete", "/files/v1/nodes/{id}"),
    ("post", "/files/v1/nodes/{id}/restore"), ("get", "/files/v1/trash"), ("post", "/files/v1/uploads"),
    ("post", "/files/v1/uploads/{id}/commit"), ("get", "/files/v1/nodes/{id}/content"),
    ("post", "/pairing/v1/sessions"), ("get", "/pairing/v1/sessions/{id}"), ("get", "/devices/v1/devices"),
    ("delete", "/devices/v1/devices/{id}"),
    ("post", "/mobile/v1/devices"), ("put", "/mobile/v1/devices/{id}/push-token"), ("get", "/mobile/v1/changes"),
    ("post", "/mobile/v1/ops"), ("get", "/mobile/v1/conflicts"),
]
VERBS = {"get", "put", "post", "patch", "delete", "head", "options"}
# served but no API: an app's own web UI passed through to its runtime (CONTRACT §8 `web`), any method and path
PASS_THROUGH = {"/apps/<name>/", "/apps/<name>/<path:rest>"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture
def doc(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def _operations(doc):
    return [(verb, path, op) for path, item in doc["paths"].items() for verb, op in item.items() if verb in VERBS]


def test_the_whole_document_is_valid_openapi(doc):
    assert doc["openapi"] == "3.1.0"
    validate_spec(doc)


def test_every_contract_operation_is_documented_with_an_operation_id(doc):
    documented = {(verb, _shape(path)): op for verb, path, op in _operations(doc)}
    missing = [(v, p) for v, p in CONTRACT_OPERATIONS if (v, _shape(p)) not in documented]
    assert missing == []
    for verb, path in CONTRACT_OPERATIONS:
        op = documented[(verb, _shape(path))]
        assert re.fullmatch(r"[a-z][A-Za-z0-9]+", op["operationId"]), (verb, path)
        assert op["responses"] and all(r.get("description") for r in op["responses"].values()), (verb, path)


def test_operation_ids_are_unique_and_present_everywhere(doc):
    ids = [op.get("operationId") for _, _, op in _operations(doc)]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_model_names_are_unique_across_functions(doc):
    """pydantic qualifies a name two modules share (`functions__files__schemas__Node`): generated clients
    would carry those names, so every model class that reaches the document has a name of its own."""
    assert [name for name in doc["components"]["schemas"] if "__" in name] == []


def test_every_route_a_function_serves_is_in_the_document(settings, doc):
    """A route added with a bare Blueprint decorator would be served but missing from the document."""
    documented = {(verb.upper(), _shape(path)) for verb, path, _ in _operations(doc)}
    for spec in FUNCTIONS:
        if spec.name == "portal":  # server-rendered HTML pages, not an API
            continue
        app = spec.load_factory()(settings)
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static" or rule.rule in PASS_THROUGH:
                continue
            path = _shape(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, path) in documented, f"{spec.name}: {method} {rule.rule} is not documented"


def test_request_bodies_are_the_models_the_routes_validate_with(doc):
    """The document's body schema of each operation is the schema of the model its route validates."""
    by_id = {op["operationId"]: op for _, _, op in _operations(doc)}
    checked = 0
    for spec in FUNCTIONS:
        for op in function_operations(spec):
            if not isinstance(op.body, type) or not op.validate:
                continue
            content = by_id[op.operation_id]["requestBody"]["content"][op.media]["schema"]
            assert content == {"$ref": f"#/components/schemas/{op.body.__name__}"}
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize(("path", "method", "payload", "code", "field"), [
    ("/files/v1/folders", "post", {"parent_id": "x", "name": 5}, "invalid_name", "name"),
    ("/files/v1/folders", "post", {"name": "n"}, "invalid_request", "parent_id"),
    ("/files/v1/nodes/ROOT", "patch", {"base_rev": "3"}, "invalid_base_rev", "base_rev"),
    ("/files/v1/nodes/ROOT", "patch", {"base_rev": 1, "colour": "red"}, "invalid_request", "colour"),
    ("/files/v1/uploads", "post", {"size": 1, "blocks": [{"hash": "zz", "size": 1}]}, "invalid_hash",
     "blocks.0.hash"),
    ("/files/v1/uploads", "post", {"size": -1, "blocks": []}, "invalid_size", "size"),
    ("/pairing/v1/sessions", "post", {"serial": 42}, "invalid_serial", "serial"),
    ("/mobile/v1/devices", "post", {"name": "phone", "platform": "windows"}, "invalid_platform", "platform"),
    ("/mobile/v1/devices/d1/push-token", "put", {"push_token": None}, "invalid_push_token", "push_token"),
    ("/mobile/v1/ops", "post", {"ops": []}, "invalid_device", "device_id"),
    ("/mobile/v1/ops", "post", {"device_id": "d", "ops": {"op_id": "1"}}, "invalid_ops", "ops"),
])
def test_a_malformed_body_is_a_400_from_the_model(client, make_user, path, method, payload, code, field):
    user = make_user()
    if "ROOT" in path:
        path = path.replace("ROOT", client.get("/files/v1/root", headers=user.headers).get_json()["id"])
    r = getattr(client, method)(path, json=payload, headers=user.headers)
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert (error["code"], error["details"]["field"]) == (code, field)
    assert error["message"].startswith(f"{field}: ")


def test_a_malformed_exchange_body_names_the_field(client):
    r = client.post("/mobile/v1/auth/google", json={"idtoken": "x"})
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_request" and r.get_json()["error"]["details"]["field"] == \
        "id_token"


def _validator(doc, name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def test_real_responses_match_their_documented_models(client, make_user, doc):
    user = make_user()
    h = user.headers
    root = client.get("/files/v1/root", headers=h).get_json()
    folder = client.post("/files/v1/folders", json={"parent_id": root["id"], "name": "Docs"}, headers=h)
    upload = client.post("/files/v1/uploads", json={"parent_id": folder.get_json()["id"], "name": "a.txt",
                                                    "size": 3, "blocks": [{"hash": "a" * 64, "size": 3}]},
                         headers=h)
    phone = client.post("/mobile/v1/devices", json={"name": "Pixel", "platform": "android"}, headers=h)
    ops = client.post("/mobile/v1/ops", headers=h, json={"device_id": phone.get_json()["device_id"], "ops": [
        {"op_id": "1", "type": "create_folder", "parent_id": root["id"], "name": "Photos"},
        {"op_id": "2", "type": "explode"}]})
    assert [r["status"] for r in ops.get_json()["results"]] == ["applied", "rejected"]
    checks = [("Node", root), ("Node", folder.get_json()), ("UploadStarted", upload.get_json()),
              ("NodePage", client.get(f"/files/v1/nodes/{root['id']}/children", headers=h).get_json()),
              ("PhoneRegistered", phone.get_json()), ("OpsResults", ops.get_json()),
              ("Changes", client.get("/mobile/v1/changes", headers=h).get_json()),
              ("DevicePage", client.get("/devices/v1/devices", headers=h).get_json()),
              ("ConflictPage", client.get("/mobile/v1/conflicts", headers=h).get_json()),
              ("Error", client.get("/files/v1/nodes/nope", headers=h).get_json())]
    for name, payload in checks:
        errors = [e.message for e in _validator(doc, name).iter_errors(payload)]
        assert errors == [], (name, errors)


GENERATOR = shutil.which("openapi-python-client") or str(Path(sys.executable).with_name("openapi-python-client"))


@pytest.mark.skipif(not Path(GENERATOR).exists(), reason="openapi-python-client is not installed")
def test_a_generated_client_talks_to_the_gateway(gateway, make_user, tmp_path, monkeypatch):
    """Any OpenAPI client generator should work from the document; this one is on PyPI (the Dart one needs Java)."""
    import requests

    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(requests.get(f"{gateway.url}/openapi.json", timeout=10).json()))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"content_type_overrides": {"image/jpeg": "application/octet-stream"}}))
    bin_dir = str(Path(sys.executable).parent)  # the generator formats its output with ruff from the same venv
    run = subprocess.run([GENERATOR, "generate", "--path", str(spec), "--meta", "none", "--config", str(config),
                          "--output-path", str(tmp_path / "pcloud_client")], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env={"PATH": bin_dir + ":/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Unable to parse" not in run.stdout + run.stderr, run.stdout + run.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    client_mod = importlib.import_module("pcloud_client")
    get_root = importlib.import_module("pcloud_client.api.files.get_root")
    create_folder = importlib.import_module("pcloud_client.api.files.create_folder")
    models = importlib.import_module("pcloud_client.models")

    user = make_user()
    api = client_mod.AuthenticatedClient(base_url=gateway.url, token=user.token, timeout=10)
    root = get_root.sync(client=api)
    assert isinstance(root, models.Node) and root.kind.value == "folder"
    made = create_folder.sync(client=api, body=models.NewFolder(parent_id=root.id, name="From the client"))
    assert isinstance(made, models.Node) and made.parent_id == root.id and made.name == "From the client"
    again = create_folder.sync(client=api, body=models.NewFolder(parent_id=root.id, name="from THE client"))
    assert isinstance(again, models.Error) and again.error.code == "name_taken"


DART_GENERATOR = Path(sys.executable).with_name("openapi-generator-cli")


@pytest.mark.skipif(not DART_GENERATOR.exists() or shutil.which("java") is None,
                    reason="needs openapi-generator-cli (PyPI, the jar inside) and a Java runtime (infra/test-deps.sh)")
def test_the_dart_client_generates(client, tmp_path):
    """What the Flutter team runs (README): OpenAPI Generator's dart-dio client, from the document as served."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get("/openapi.json").get_json()))
    out = tmp_path / "pcloud_dart"
    run = subprocess.run([str(DART_GENERATOR), "generate", "-i", str(spec), "-g", "dart-dio", "-o", str(out),
                          "--additional-properties=pubName=pcloud_api"], capture_output=True, text=True,
                         timeout=540)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert " ERROR " not in log and "Exception" not in log, log[-4000:]
    files_api = (out / "lib/src/api/files_api.dart").read_text()
    for method in ("createFolder", "updateNode", "startUpload", "commitUpload", "getContent"):
        assert f"> {method}(" in files_api, method
    assert "Future<Response<OpsResults>> postOps(" in (out / "lib/src/api/mobile_api.dart").read_text()
    mobile_op = (out / "lib/src/model/mobile_op.dart").read_text()
    assert all(f"MobileOp{kind}" in mobile_op for kind in ("CreateFolder", "Rename", "Move", "Delete", "CommitUpload"))


def test_security_comes_from_the_routing_table(doc):
    """Auth policy and scopes of gateway/routing.py, the same table the gateway enforces."""
    from gateway.routing import match

    paths = doc["paths"]
    for path, verb in [("/files/v1/root", "get"), ("/files/v1/folders", "post"), ("/mobile/v1/ops", "post")]:
        spec = match(path)
        scope = spec.scope_for(path, verb.upper())
        assert scope and paths[path][verb]["security"] == [{"bearer": [scope]}]
        assert {"401", "403", "429"} <= set(paths[path][verb]["responses"])
    assert paths["/mobile/v1/auth/google"]["post"]["security"] == []
    assert paths["/auth/token"]["post"]["security"] == []
    assert paths["/echo/v1/ping"]["get"]["security"] == [{}, {"bearer": []}]
    assert paths["/healthz"]["get"]["security"] == []


def test_every_scope_the_routing_table_asks_for_is_a_declared_oauth2_scope(doc):
    """CONTRACT §2 in the document: the oauth2 scheme lists the scopes; /admin/v1 needs `admin`."""
    schemes = doc["components"]["securitySchemes"]
    declared = schemes["oauth2"]["flows"]["authorizationCode"]["scopes"]
    assert schemes["openid"]["openIdConnectUrl"].endswith("/.well-known/openid-configuration")
    used = {s for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)
            for req in op.get("security", []) for s in req.get("bearer", [])}
    assert used and used <= set(declared)
    assert doc["paths"]["/admin/v1/users"]["get"]["security"] == [{"bearer": ["admin"]}]
    assert doc["paths"]["/devices/v1/devices"]["get"]["security"] == [{"bearer": ["devices"]}]
    assert doc["paths"]["/files/v1/folders"]["post"]["security"] == [{"bearer": ["files.write"]}]
