"""The photo milestone (issue 16, CONTRACT §10) through the gateway as a phone would, on the running stack (the
runner, the event processor and the search indexer as their own processes): an admin installs and approves the
three bundled apps from the catalog, the user sets min_faces, uploads photos into /Camera with the §3 upload
flow, and sees Images, Faces and a Person; renames the Person and finds them and their photos by name; merges
two people; trashes a photo and its Image and Faces go."""

from __future__ import annotations

import pytest

from tests.fixtures.files import FilesApi
from tests.fixtures.photos import ASTRONAUT_FACE, astronaut, encode, iou, lfw_face, no_face, same_person_set, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_photo_milestone_from_the_phone(photo_stack, make_user):
    stack = photo_stack
    admin = make_user(name="Admin", admin=True)
    phone = make_user(name="Ann")
    catalog = {i["name"]: i for i in stack.api("GET", "/apps/v1/catalog", phone).json()["items"]}
    assert {"image-importer", "face-detector", "photos-ui"} <= set(catalog)
    stack.install(admin)

    settings = stack.api("PUT", "/apps/v1/apps/face-detector/settings", phone, json={"min_faces": 2})
    assert settings.status_code == 200, settings.text
    assert settings.json()["match_distance"] == 0.6
    bad = stack.api("PUT", "/apps/v1/apps/face-detector/settings", phone, json={"min_faces": 0})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_settings"

    files = FilesApi(stack.url, phone.token)
    camera = wait_until(lambda: next((c for c in files.call("GET", f"/nodes/{files.root()['id']}/children")
                                      .json()["items"] if c["name"] == "Camera"), None), timeout=60)
    assert camera, ("the init action makes /Camera", stack.log("events"))

    variants = same_person_set(astronaut())
    uploads = {}
    for name in ("original", "mirrored", "smaller"):
        uploads[name] = files.upload(camera["id"], f"{name}.jpg", encode(variants[name]),
                                     mtime="2024-07-01T09:00:00Z")
    uploads["coffee"] = files.upload(camera["id"], "coffee.jpg", encode(no_face("coffee")))
    files.upload(files.root()["id"], "elsewhere.jpg", encode(variants["brighter"]))  # not under /Camera

    images = wait_until(lambda: len(found := stack.nodes(phone, "photos.Image")) == 4 and found, timeout=120)
    assert images, (stack.nodes(phone, "photos.Image"), stack.diagnose(phone))
    by_file = {i["data"]["file_id"]: i for i in images}
    assert set(by_file) == {n["id"] for n in uploads.values()}
    assert by_file[uploads["original"]["id"]]["data"]["path"] == "/Camera/original.jpg"

    def grouped():
        people = stack.nodes(phone, "faces.Person")
        faces = stack.nodes(phone, "faces.Face")
        return len(faces) == 3 and len(people) == 1 and people[0]["data"]["face_count"] == 3 and (people, faces)

    found = wait_until(grouped, timeout=180)
    assert found, (stack.nodes(phone, "faces.Face"), stack.nodes(phone, "faces.Person"), stack.diagnose(phone))
    [person], faces = found
    original_image = by_file[uploads["original"]["id"]]
    first_face = next(f for f in faces if f["data"]["image"] == original_image["id"])
    assert iou(first_face["data"]["box"], ASTRONAUT_FACE) > 0.7
    assert {f["data"]["person"] for f in faces} == {person["id"]}
    def settled():
        items = stack.api("GET", "/apps/v1/executions?app=face-detector", phone).json()["items"]
        return items and all(e["state"] in ("done", "dead") for e in items) and items

    executions = wait_until(settled, timeout=120)
    assert executions and all(e["state"] == "done" for e in executions), stack.diagnose(phone)

    # rename on the phone (updateNode, §10); search finds the Person and every Image showing them
    stack.gql(phone, "mutation($id: ID!) { updateNode(id: $id, data: {name: \"Eileen Collins\"}) { rev } }",
              {"id": person["id"]})
    showing = {by_file[uploads[n]["id"]]["id"] for n in ("original", "mirrored", "smaller")}

    def findable():
        hits = stack.search(phone, "eileen")
        return ({h["id"] for h in hits} == showing | {person["id"]}) and hits

    hits = wait_until(findable, timeout=60)
    assert hits, (stack.search(phone, "eileen"), stack.log("events"), stack.log("search"))
    assert stack.search(make_user(name="Bob"), "eileen") == []  # nobody else finds Ann's people

    # a second person, then merged into the first through the action API
    for i, image in enumerate(list(same_person_set(lfw_face(0)).values())[:2]):
        files.upload(camera["id"], f"friend-{i}.png", encode(image, "PNG"))
    people = wait_until(lambda: len(p := stack.nodes(phone, "faces.Person")) == 2 and p, timeout=180)
    assert people, (stack.nodes(phone, "faces.Person"), stack.log("events"))
    assert wait_until(settled, timeout=120), stack.diagnose(phone)  # merge what the detector has finished
    other = next(p for p in people if p["id"] != person["id"])
    merged = stack.api("POST", "/apps/v1/actions/face-detector/merge-people", phone,
                       json={"into": person["id"], "from": [other["id"]]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["execution"]["state"] == "done" and merged.json()["execution"]["result"]["faces_moved"] == 2
    [only] = stack.nodes(phone, "faces.Person")
    assert only["id"] == person["id"] and only["data"]["face_count"] == 5
    assert wait_until(lambda: len(stack.search(phone, "eileen")) == 6, timeout=60), stack.search(phone, "eileen")

    # trash a photo: its Image and its Face go
    trashed = files.call("DELETE", f"/nodes/{uploads['original']['id']}")
    assert trashed.status_code == 200

    def cleaned():
        left = {i["data"]["file_id"] for i in stack.nodes(phone, "photos.Image")}
        faces = stack.nodes(phone, "faces.Face")
        return uploads["original"]["id"] not in left and len(faces) == 4 and faces

    assert wait_until(cleaned, timeout=120), (stack.nodes(phone, "faces.Face"), stack.log("events"))
    assert wait_until(lambda: stack.nodes(phone, "faces.Person")[0]["data"]["face_count"] == 4, timeout=60)
