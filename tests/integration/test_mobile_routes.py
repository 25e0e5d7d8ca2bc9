"""The /mobile/v1 sync endpoints through the real gateway: changes feed, ops, conflicts, OpenAPI."""

import json


def get(client, user, path):
    resp = client.get(path, headers=user.headers)
    return resp.status_code, resp.get_json()


def post(client, user, path, body):
    resp = client.post(path, headers=user.headers, data=json.dumps(body), content_type="application/json")
    return resp.status_code, resp.get_json()


def test_changes_feed_pages_in_change_order_and_resumes(client, sync_world):
    w = sync_world
    phone = w.device("Pixel")
    a = w.folder(phone, "a")
    b = w.folder(phone, "b")
    w.one(phone, {"type": "rename", "node_id": a["id"], "name": "a2", "base_rev": a["rev"]})
    status, page = get(client, w.user, "/mobile/v1/changes?limit=2")
    assert status == 200 and page["has_more"] is True
    assert [n["id"] for n in page["changes"]] == [w.root["_id"], b["id"]]  # a moved to the end: latest state only
    status, rest = get(client, w.user, f"/mobile/v1/changes?cursor={page['cursor']}&limit=2")
    assert rest["has_more"] is False and [(n["id"], n["name"]) for n in rest["changes"]] == [(a["id"], "a2")]
    status, empty = get(client, w.user, f"/mobile/v1/changes?cursor={rest['cursor']}")
    assert empty == {"changes": [], "cursor": rest["cursor"], "has_more": False}
    w.one(phone, {"type": "delete", "node_id": b["id"], "base_rev": b["rev"]})
    status, after = get(client, w.user, f"/mobile/v1/changes?cursor={rest['cursor']}")
    assert [n["id"] for n in after["changes"]] == [b["id"]] and after["changes"][0]["trashed_at"]
    assert set(after["changes"][0]) >= {"id", "parent_id", "name", "kind", "rev", "size", "content_hash", "mtime",
                                        "trashed_at"}


def test_changes_bad_input_and_expired_cursor(client, sync_world):
    w = sync_world
    phone = w.device("Pixel")
    w.folder(phone, "a")
    _, page = get(client, w.user, "/mobile/v1/changes")
    for query, code in [("cursor=nonsense", "invalid_cursor"), ("cursor=czE6OTk5OTk", "invalid_cursor"),
                        ("limit=0", "invalid_limit"), ("limit=x", "invalid_limit"), ("limit=99999", "invalid_limit")]:
        status, body = get(client, w.user, f"/mobile/v1/changes?{query}")
        assert (status, body["error"]["code"]) == (400, code), query
    w.db.users.update_one({"_id": w.user.id}, {"$set": {"journal_floor": 5}})
    status, body = get(client, w.user, f"/mobile/v1/changes?cursor={page['cursor']}")
    assert (status, body["error"]["code"]) == (410, "cursor_expired")
    status, fresh = get(client, w.user, "/mobile/v1/changes")
    assert status == 200 and len(fresh["changes"]) == 2


def test_changes_are_per_user(client, sync_world, make_user):
    stranger = make_user()
    from functions.files import service as files

    files.get_root(sync_world.db, stranger.id)
    sync_world.folder(sync_world.device("Pixel"), "private")
    _, theirs = get(client, stranger, "/mobile/v1/changes")
    assert [n["name"] for n in theirs["changes"]] == [""]


def test_ops_endpoint_applies_and_is_idempotent(client, sync_world):
    w = sync_world
    phone = w.device("Pixel")
    body = {"device_id": phone, "ops": [{"op_id": "1", "type": "create_folder", "parent_id": w.root["_id"],
                                         "name": "Camera"}]}
    status, first = post(client, w.user, "/mobile/v1/ops", body)
    assert status == 200 and first["results"][0]["status"] == "applied" and first["cursor"]
    status, again = post(client, w.user, "/mobile/v1/ops", body)
    assert again["results"] == first["results"]
    assert w.db.nodes.count_documents({"owner": w.user.id, "name": "Camera"}) == 1


def test_ops_bad_batches(client, sync_world, make_user):
    w = sync_world
    phone = w.device("Pixel")
    stranger = make_user()
    cases = [({"ops": []}, 400, "invalid_device"), ({"device_id": phone}, 400, "invalid_ops"),
             ({"device_id": phone, "ops": {}}, 400, "invalid_ops"),
             ({"device_id": phone, "ops": [{}] * 1001}, 400, "too_many_ops"),
             ({"device_id": "f" * 24, "ops": []}, 404, "not_found")]
    for body, status, code in cases:
        got, answer = post(client, w.user, "/mobile/v1/ops", body)
        assert (got, answer["error"]["code"]) == (status, code), body
    got, answer = post(client, stranger, "/mobile/v1/ops", {"device_id": phone, "ops": []})
    assert (got, answer["error"]["code"]) == (404, "not_found")
    resp = client.post("/mobile/v1/ops", headers=w.user.headers, data="{", content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_json"
    assert client.get("/mobile/v1/changes").status_code == 401


def test_conflicts_list_pages_newest_first(client, sync_world):
    w = sync_world
    pc, phone = w.device("PC"), w.device("Pixel")
    folders = [w.folder(pc, f"f{i}") for i in range(3)]
    for f in folders:
        w.one(pc, {"type": "rename", "node_id": f["id"], "name": f["name"] + "-pc", "base_rev": f["rev"]})
        w.one(phone, {"type": "delete", "node_id": f["id"], "base_rev": f["rev"]})
    status, page = get(client, w.user, "/mobile/v1/conflicts?limit=2")
    assert status == 200 and len(page["items"]) == 2 and page["next_cursor"]
    _, rest = get(client, w.user, f"/mobile/v1/conflicts?limit=2&cursor={page['next_cursor']}")
    items = page["items"] + rest["items"]
    assert [c["node_id"] for c in items] == [f["id"] for f in reversed(folders)]
    assert {c["type"] for c in items} == {"delete_modified"} and rest["next_cursor"] is None
    assert all(c["device_id"] == phone and c["op"]["type"] == "delete" for c in items)
    status, body = get(client, w.user, "/mobile/v1/conflicts?cursor=%%%")
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")


def test_openapi_documents_the_sync_endpoints(client):
    doc = client.get("/openapi.json").get_json()
    for path, verb in [("/mobile/v1/changes", "get"), ("/mobile/v1/ops", "post"), ("/mobile/v1/conflicts", "get")]:
        operation = doc["paths"][path][verb]
        assert operation["operationId"] and "200" in operation["responses"]
    schemas = doc["components"]["schemas"]
    assert {"MobileNode", "MobileOp", "MobileOpResult", "MobileConflict"} <= set(schemas)
    variants = [schemas[o["$ref"].rsplit("/", 1)[-1]] for o in schemas["MobileOp"]["oneOf"]]
    kinds = [v["properties"]["type"]["const"] for v in variants]
    assert kinds == ["create_folder", "rename", "move", "delete", "commit_upload"]
    mapping = schemas["MobileOp"]["discriminator"]["mapping"]
    assert {k: schemas[v.rsplit("/", 1)[-1]]["properties"]["type"]["const"] for k, v in mapping.items()} == \
        {k: k for k in kinds}

    def refs(value):
        if isinstance(value, dict):
            yield from ([value["$ref"]] if "$ref" in value else [])
            for v in value.values():
                yield from refs(v)
        elif isinstance(value, list):
            for v in value:
                yield from refs(v)

    for ref in refs({k: doc["paths"][k] for k in doc["paths"] if k.startswith("/mobile/v1/")} | schemas):
        assert ref.rsplit("/", 1)[-1] in schemas, ref
    from openapi_spec_validator import validate

    mine = ("/mobile/v1/changes", "/mobile/v1/ops", "/mobile/v1/conflicts")
    validate({**doc, "paths": {p: doc["paths"][p] for p in mine}})  # a valid OpenAPI 3.1 document
