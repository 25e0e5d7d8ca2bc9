"""The face detector's WSGI handlers against a local HTTP stand-in of PCloud's API (tests/fakes/pcloud_api.py),
with the real dlib model: faces, people appearing at min_faces, rename → Images' search text, merge, removal,
and bad input ending done with nothing created."""

from __future__ import annotations

import pytest

from tests.fixtures.photos import ASTRONAUT_FACE, astronaut, bomb, encode, iou, lfw_face, no_face, same_person_set

SETTINGS = {"min_faces": 2, "match_distance": 0.6}


@pytest.fixture
def detector(fake_pcloud, app_client):
    client = app_client("face_detector.web", fake_pcloud.url)
    client.token = fake_pcloud.user("alice")
    return client


def _image(fake, owner: str, name: str, data: bytes) -> str:
    """A photos.Image as the importer makes it, and its file."""
    file_id = f"file-{name}"
    fake.put_file(owner, file_id, data)
    resolvers = fake._resolvers(owner)
    node = resolvers["Mutation"]["createNode"](None, None, "photos.Image",
                                               {"file_id": file_id, "name": name, "path": f"/Camera/{name}"})
    return node["id"]


def _detect(client, image_id, settings=SETTINGS):
    answer = client.action("/actions/detect", client.token, {"image_id": image_id}, settings)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _faces(fake, image_id=None):
    return [f for f in fake.of_type("alice", "faces.Face") if image_id is None or f["data"]["image"] == image_id]


def test_faces_people_rename_and_merge(fake_pcloud, detector):
    fake = fake_pcloud
    variants = same_person_set(astronaut())
    first = _image(fake, "alice", "a.jpg", encode(variants["original"]))
    result = _detect(detector, first)
    assert result["faces"] == 1 and iou(result["boxes"][0], ASTRONAUT_FACE) > 0.7
    [face] = _faces(fake, first)
    assert face["data"]["grouped"] is False and "person" not in face["data"]
    assert fake.of_type("alice", "faces.Person") == []  # one face is not a person yet (min_faces 2)
    assert fake.nodes[first]["data"]["faces"] == [face["id"]]

    second = _image(fake, "alice", "b.jpg", encode(variants["mirrored"]))
    _detect(detector, second)
    [person] = fake.of_type("alice", "faces.Person")
    assert person["data"]["face_count"] == 2 and person["data"]["hidden"] is False
    assert {f["data"].get("person") for f in _faces(fake)} == {person["id"]}
    assert person["data"]["cover"] in {f["id"] for f in _faces(fake)}

    third = _image(fake, "alice", "c.jpg", encode(variants["smaller"]))
    _detect(detector, third)
    assert fake.nodes[person["id"]]["data"]["face_count"] == 3
    coffee = _image(fake, "alice", "coffee.jpg", encode(no_face("coffee")))
    assert _detect(detector, coffee)["faces"] == 0
    assert _detect(detector, first) == {"skipped": "unchanged", "faces": 1}

    # the user names the person (updateNode, §10); the trigger on faces.Person updates calls person-changed
    fake._resolvers("alice")["Mutation"]["updateNode"](None, None, person["id"], {"name": "Eileen Collins"})
    changed = detector.action("/actions/person-changed", detector.token, {"person_id": person["id"]})
    assert changed.get_json() == {"images": 3}
    assert [fake.nodes[i]["data"]["people"] for i in (first, second, third)] == ["Eileen Collins"] * 3
    assert fake.nodes[coffee]["data"]["people"] == ""

    # a second person, from another face of lfw_subset, then merged into the first
    other = [_image(fake, "alice", f"o{i}.png", encode(img, "PNG"))
             for i, img in enumerate(list(same_person_set(lfw_face(0)).values())[:2])]
    for image_id in other:
        _detect(detector, image_id)
    people = fake.of_type("alice", "faces.Person")
    assert len(people) == 2
    [second_person] = [p for p in people if p["id"] != person["id"]]
    assert "name" not in second_person["data"]
    merged = detector.action("/actions/merge-people", detector.token,
                             {"into": person["id"], "from": [second_person["id"]]})
    assert merged.status_code == 200, merged.get_json()
    assert merged.get_json()["faces_moved"] == 2
    assert [p["id"] for p in fake.of_type("alice", "faces.Person")] == [person["id"]]
    assert fake.nodes[person["id"]]["data"]["face_count"] == 5
    assert all(fake.nodes[i]["data"]["people"] == "Eileen Collins" for i in other)

    # a later photo of the merged-in face does not undo the merge: it joins the merged person
    again = _image(fake, "alice", "o-again.png", encode(same_person_set(lfw_face(0))["brighter"], "PNG"))
    _detect(detector, again)
    assert len(fake.of_type("alice", "faces.Person")) == 1
    assert fake.nodes[again]["data"]["people"] == "Eileen Collins"

    # the Image is deleted (its file trashed): its faces go, the person is recounted
    gone = detector.action("/actions/forget-image", detector.token, {"image_id": first})
    assert gone.get_json() == {"faces_removed": 1}
    assert _faces(fake, first) == []
    assert fake.nodes[person["id"]]["data"]["face_count"] == 5

    bad = detector.action("/actions/merge-people", detector.token, {"into": person["id"], "from": [person["id"]]})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_params"
    unknown = detector.action("/actions/merge-people", detector.token, {"into": person["id"], "from": ["nope"]})
    assert unknown.status_code == 400


def test_min_faces_one_and_recluster(fake_pcloud, detector):
    fake = fake_pcloud
    variants = list(same_person_set(astronaut()).values())
    ids = [_image(fake, "alice", f"{i}.jpg", encode(v)) for i, v in enumerate(variants[:3])]
    for image_id in ids:
        _detect(detector, image_id, {"min_faces": 5, "match_distance": 0.6})
    assert fake.of_type("alice", "faces.Person") == []
    answer = detector.action("/actions/recluster", detector.token, {}, {"min_faces": 3, "match_distance": 0.6})
    assert answer.get_json() == {"people_made": 1}
    [person] = fake.of_type("alice", "faces.Person")
    assert person["data"]["face_count"] == 3

    lone = _image(fake, "alice", "lone.png", encode(lfw_face(8), "PNG"))
    _detect(detector, lone, {"min_faces": 1, "match_distance": 0.6})
    assert len(fake.of_type("alice", "faces.Person")) == 2


def test_bad_input_is_done_with_nothing_created(fake_pcloud, detector):
    fake = fake_pcloud
    whole = encode(astronaut())
    cases = {"text.jpg": b"not a picture\n" * 50, "truncated.jpg": whole[: len(whole) // 3], "bomb.png": bomb()}
    for name, data in cases.items():
        image_id = _image(fake, "alice", name, data)
        result = _detect(detector, image_id)
        assert result["skipped"] == "not an image" and result["reason"], name
    image_id = _image(fake, "alice", "deleted.jpg", whole)
    del fake.files[("alice", "file-deleted.jpg")]
    assert _detect(detector, image_id)["skipped"] == "the file is gone"
    assert _detect(detector, "no-such-image")["skipped"] == "the image is gone"
    assert _faces(fake) == [] and fake.of_type("alice", "faces.Person") == []


def test_image_deleted_while_detecting_leaves_nothing(fake_pcloud, app_client):
    """The photo is trashed (the importer deletes its Image) while the model runs."""
    from face_detector import model as face_model
    from face_detector import web

    fake = fake_pcloud
    token = fake.user("alice")
    image_id = _image(fake, "alice", "a.jpg", encode(astronaut()))

    class TrashedMeanwhile:
        name, dimensions = "trashed-meanwhile", 128

        def detect(self, rgb):
            found = face_model.load_model("dlib").detect(rgb)
            fake._resolvers("alice")["Mutation"]["deleteNode"](None, None, image_id)
            return found

    face_model.BACKENDS["trashed-meanwhile"] = TrashedMeanwhile
    try:
        client = web.create_app("trashed-meanwhile").test_client()
        answer = client.post("/actions/detect", json={"params": {"image_id": image_id}, "settings": SETTINGS,
                                                      "api_url": fake.url},
                             headers={"Authorization": f"Bearer {token}"})
    finally:
        face_model.BACKENDS.pop("trashed-meanwhile")
        face_model._models.pop("trashed-meanwhile", None)
    assert answer.status_code == 200 and answer.get_json()["skipped"] == "the image is gone"
    assert _faces(fake) == [] and fake.of_type("alice", "faces.Person") == []


def test_another_users_image_is_never_read(fake_pcloud, detector):
    fake = fake_pcloud
    bobs = _image(fake, "bob", "bob.jpg", encode(astronaut()))
    assert _detect(detector, bobs)["skipped"] == "the image is gone"
    assert not any(what.startswith("files.read") for owner, what in fake.calls if owner == "alice")
    assert fake.of_type("bob", "faces.Face") == [] and _faces(fake) == []


def test_detects_again_after_its_faces_were_purged(fake_pcloud, detector):
    """Uninstalled with purge and installed again (replay): the Images still say which file their faces were of."""
    fake = fake_pcloud
    image_id = _image(fake, "alice", "a.jpg", encode(astronaut()))
    assert _detect(detector, image_id)["faces"] == 1
    assert _detect(detector, image_id) == {"skipped": "unchanged", "faces": 1}
    for face in _faces(fake):
        del fake.nodes[face["id"]]  # a namespace purge deletes the nodes without unlinking Image.faces
    again = _detect(detector, image_id)
    assert again["faces"] == 1 and iou(again["boxes"][0], ASTRONAUT_FACE) > 0.7
    assert fake.nodes[image_id]["data"]["faces"] == [f["id"] for f in _faces(fake)]
