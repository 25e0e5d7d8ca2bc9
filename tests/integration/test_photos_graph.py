"""The photo apps' handlers against the real gateway (real graph with their own SDL installed, real /files/v1 and
the §3 upload flow), called as the platform calls them. The token is the user's own until the application
manager issues invocation tokens; the milestone test drives the same through the app platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.photos import ASTRONAUT_FACE, astronaut, encode, iou, no_face, same_person_set

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo_schemas(clients):
    from functions.graph import registry

    registry.install_namespace(clients.db, "photos", (ROOT / "apps/image-importer/schema.graphql").read_text(),
                               "image-importer")
    registry.install_namespace(clients.db, "faces", (ROOT / "apps/face-detector/schema.graphql").read_text(),
                               "face-detector", extend_grants={"photos.Image"})


def _event(node: dict, path: str, type_: str = "files.node.created") -> dict:
    return {"type": type_, "subject": node["id"], "data": {"node": node, "path": path}}


def _nodes(api, type_: str) -> list[dict]:
    answer = api.http.post(f"{api.base}/graph/v1/graphql", timeout=30, json={
        "query": "query($t: String!) { nodes(type: $t, first: 500) { items { id type data } } }",
        "variables": {"t": type_}})
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]["nodes"]["items"]


def test_import_detect_group_rename_merge_remove(files_api, photo_schemas, app_client):
    api = files_api()
    importer = app_client("image_importer.web", api.base)
    detector = app_client("face_detector.web", api.base)
    camera = api.folder(api.root()["id"], "Camera")
    settings = {"min_faces": 2, "match_distance": 0.6}

    image_ids = []
    pictures = {**{f"{k}.jpg": encode(v) for k, v in same_person_set(astronaut()).items()},
                "coffee.jpg": encode(no_face("coffee"))}
    for name, data in pictures.items():
        node = api.upload(camera["id"], name, data, mtime="2024-06-01T12:00:00Z")
        answer = importer.action("/actions/import", api.token, {"file_id": node["id"]}, {"folders": ["/Camera"]},
                                 _event(node, f"/Camera/{name}"))
        assert answer.status_code == 200, answer.get_json()
        image_ids.append(answer.get_json()["image_id"])
    images = {n["id"]: n for n in _nodes(api, "photos.Image")}
    assert set(images) == set(image_ids)
    assert images[image_ids[0]]["data"]["taken_at"] == "2024-06-01T12:00:00Z"

    for image_id in image_ids:
        answer = detector.action("/actions/detect", api.token, {"image_id": image_id}, settings)
        assert answer.status_code == 200, answer.get_json()
    faces = _nodes(api, "faces.Face")
    assert len(faces) == len(pictures) - 1
    first = next(f for f in faces if f["data"]["image"] == image_ids[0])
    assert iou(first["data"]["box"], ASTRONAUT_FACE) > 0.7
    [person] = _nodes(api, "faces.Person")
    assert person["data"]["face_count"] == len(faces)

    renamed = api.http.post(f"{api.base}/graph/v1/graphql", timeout=30, json={
        "query": "mutation($id: ID!) { updateNode(id: $id, data: {name: \"Eileen Collins\"}) { rev } }",
        "variables": {"id": person["id"]}})
    assert "errors" not in renamed.json(), renamed.json()
    changed = detector.action("/actions/person-changed", api.token, {"person_id": person["id"]})
    assert changed.get_json() == {"images": len(faces)}
    people = {n["id"]: n["data"].get("people") for n in _nodes(api, "photos.Image")}
    assert [people[i] for i in image_ids] == ["Eileen Collins"] * len(faces) + [""]

    trashed = api.call("DELETE", f"/nodes/{images[image_ids[0]]['data']['file_id']}")
    assert trashed.status_code == 200
    gone = importer.action("/actions/remove", api.token, {"file_id": trashed.json()["id"]}, {},
                           _event(trashed.json(), "/Camera/original.jpg", "files.node.trashed"))
    assert gone.get_json() == {"removed": 1}
    forgot = detector.action("/actions/forget-image", api.token, {"image_id": image_ids[0]})
    assert forgot.get_json() == {"faces_removed": 1}
    assert len(_nodes(api, "faces.Face")) == len(faces) - 1
    assert _nodes(api, "faces.Person")[0]["data"]["face_count"] == len(faces) - 1
