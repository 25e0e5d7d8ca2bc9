"""The image importer's WSGI handlers against a local HTTP stand-in of PCloud's API (tests/fakes/pcloud_api.py):
one photos.Image per picture under the folders, by content, with EXIF; bad input ends done with nothing made."""

from __future__ import annotations

import pytest

from tests.fixtures.photos import astronaut, bomb, camera_exif, encode, no_face

IMPORT = "/actions/import"


def _event(type_: str, file_id: str, path: str, kind: str = "file", mtime="2023-01-02T03:04:05Z", trashed=None):
    name = path.rsplit("/", 1)[-1]
    return {"id": f"ev-{file_id}", "seq": 1, "type": type_, "subject": file_id, "owner": "alice", "data": {
        "path": path, "node": {"id": file_id, "name": name, "kind": kind, "mtime": mtime, "trashed_at": trashed}}}


@pytest.fixture
def importer(fake_pcloud, app_client):
    client = app_client("image_importer.web", fake_pcloud.url)
    client.token = fake_pcloud.user("alice")
    return client


def _import(client, file_id, path, **kw):
    return client.action(IMPORT, client.token, {"file_id": file_id, "path": path}, {"folders": ["/Camera"]},
                         _event("files.node.created", file_id, path, **kw))


def test_a_camera_photo_becomes_one_image_with_its_exif(fake_pcloud, importer):
    photo = encode(astronaut().resize((400, 200)), "JPEG", exif=camera_exif(orientation=6))
    fake_pcloud.put_file("alice", "f1", photo)
    answer = _import(importer, "f1", "/Camera/IMG_1.jpg")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["created"] is True
    [image] = fake_pcloud.of_type("alice", "photos.Image")
    data = image["data"]
    assert data["file_id"] == "f1" and data["name"] == "IMG_1.jpg" and data["path"] == "/Camera/IMG_1.jpg"
    assert (data["width"], data["height"]) == (200, 400)  # orientation 6: shown turned
    assert data["taken_at"] == "2024-05-01T10:00:00+02:00"
    assert data["camera"] == "Google Pixel 8"
    assert data["gps"]["lat"] == pytest.approx(52.52, abs=1e-3) and data["gps"]["lon"] == pytest.approx(13.41, abs=1e-3)

    again = importer.action(IMPORT, importer.token, {"file_id": "f1"}, {"folders": ["/Camera"]},
                            _event("files.node.updated", "f1", "/Camera/IMG_1.jpg"))
    assert again.status_code == 200 and again.get_json()["created"] is False
    assert again.get_json()["image_id"] == image["id"]
    assert len(fake_pcloud.of_type("alice", "photos.Image")) == 1


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_formats_by_content_and_mtime_fallback(fake_pcloud, importer, fmt):
    fake_pcloud.put_file("alice", "f2", encode(no_face("coffee"), fmt))
    answer = _import(importer, "f2", "/Camera/sub/named-anything.jpg")
    assert answer.status_code == 200 and answer.get_json()["created"] is True
    [image] = fake_pcloud.of_type("alice", "photos.Image")
    assert (image["data"]["width"], image["data"]["height"]) == (600, 400)
    assert image["data"]["taken_at"] == "2023-01-02T03:04:05Z"
    assert "camera" not in image["data"] and "gps" not in image["data"]


def test_bad_input_is_done_with_nothing_created(fake_pcloud, importer):
    whole = encode(astronaut(), "JPEG")
    cases = {"text.jpg": b"hello, I am not a picture\n" * 40, "truncated.jpg": whole[: len(whole) // 3],
             "bomb.png": bomb(), "empty.jpg": b""}
    for i, (name, data) in enumerate(cases.items()):
        fake_pcloud.put_file("alice", f"bad{i}", data)
        answer = _import(importer, f"bad{i}", f"/Camera/{name}")
        assert answer.status_code == 200, name
        assert answer.get_json()["skipped"] == "not an image" and answer.get_json()["reason"], name
    gone = _import(importer, "never-uploaded", "/Camera/gone.jpg")
    assert gone.status_code == 200 and gone.get_json()["skipped"] == "the file is gone"
    assert fake_pcloud.of_type("alice", "photos.Image") == []


def test_outside_the_folders_and_moves(fake_pcloud, importer):
    fake_pcloud.put_file("alice", "f3", encode(astronaut(), "JPEG"))
    outside = _import(importer, "f3", "/Documents/scan.jpg")
    assert outside.get_json()["skipped"] == "outside the folders"
    assert fake_pcloud.of_type("alice", "photos.Image") == []
    assert _import(importer, "f3", "/CameraRoll/x.jpg").get_json()["skipped"] == "outside the folders"
    assert _import(importer, "f3", "/Camera/x.jpg").get_json()["created"] is True
    moved_out = importer.action(IMPORT, importer.token, {"file_id": "f3"}, {"folders": ["/Camera"]},
                                _event("files.node.updated", "f3", "/Documents/x.jpg"))
    assert moved_out.get_json() == {"skipped": "outside the folders", "removed": 1}
    assert fake_pcloud.of_type("alice", "photos.Image") == []


def test_trash_removes_the_image_and_a_folder_its_images(fake_pcloud, importer):
    for i in range(3):
        fake_pcloud.put_file("alice", f"t{i}", encode(astronaut().resize((64 + i, 64)), "PNG"))
        assert _import(importer, f"t{i}", f"/Camera/{'trip/' if i else ''}p{i}.png").status_code == 200
    one = importer.action("/actions/remove", importer.token, {"file_id": "t0"}, {},
                          _event("files.node.trashed", "t0", "/Camera/p0.png"))
    assert one.get_json() == {"removed": 1}
    folder = importer.action("/actions/remove", importer.token, {"file_id": "trip"}, {},
                             _event("files.node.trashed", "trip", "/Camera/trip", kind="folder"))
    assert folder.get_json() == {"removed": 2}
    assert fake_pcloud.of_type("alice", "photos.Image") == []


def test_another_users_file_is_never_read(fake_pcloud, importer, app_client):
    fake_pcloud.put_file("bob", "fb", encode(astronaut(), "JPEG"))
    answer = _import(importer, "fb", "/Camera/bobs.jpg")
    assert answer.get_json()["skipped"] == "the file is gone"
    assert fake_pcloud.of_type("alice", "photos.Image") == [] and fake_pcloud.of_type("bob", "photos.Image") == []


def test_setup_ensures_the_folders_and_errors_map_to_retry_or_dead(fake_pcloud, importer):
    answer = importer.action("/actions/setup", importer.token, {}, {"folders": ["/Camera", "/Phone/DCIM/"]})
    assert answer.status_code == 200 and answer.get_json() == {"folders": ["/Camera", "/Phone/DCIM"]}
    assert fake_pcloud.folders == {("alice", "/Camera"), ("alice", "/Phone/DCIM")}

    fake_pcloud.unavailable = True
    down = _import(importer, "f9", "/Camera/x.jpg")
    assert down.status_code == 503 and down.get_json()["error"]["code"] == "pcloud_unavailable"
    fake_pcloud.unavailable = False
    no_token = importer.post(IMPORT, json={"params": {"file_id": "x"}, "api_url": fake_pcloud.url})
    assert no_token.status_code == 400
    no_param = importer.action(IMPORT, importer.token, {})
    assert no_param.status_code == 400 and "file_id" in no_param.get_json()["error"]["message"]
