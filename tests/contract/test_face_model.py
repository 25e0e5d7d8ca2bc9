"""The FaceModel interface of the face-detector app, run against every backend: faces where they are (IoU against
boxes measured once), none where there is no human face, one person's transformed faces close together and
apart from other people's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.fixtures.photos import ASTRONAUT_FACE, _app_paths, astronaut, iou, lfw_face, no_face, same_person_set

_app_paths()
from face_detector import model as face_model  # noqa: E402


@pytest.fixture(scope="module", params=sorted(face_model.BACKENDS))
def backend(request):
    return face_model.BACKENDS[request.param]()


def test_finds_the_astronauts_face(backend):
    faces = backend.detect(np.asarray(astronaut()))
    assert len(faces) == 1
    assert iou(faces[0].box.as_dict(), ASTRONAUT_FACE) > 0.7
    assert faces[0].embedding.shape == (backend.dimensions,) and faces[0].score > 0


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_human_face(backend, name):
    assert backend.detect(np.asarray(no_face(name))) == []


def test_one_persons_faces_are_close_and_others_are_not(backend):
    mine = {}
    for name, image in same_person_set(astronaut()).items():
        faces = backend.detect(np.asarray(image))
        assert len(faces) == 1, name
        mine[name] = faces[0].embedding
    same = [np.linalg.norm(a - b) for a, b in itertools.combinations(mine.values(), 2)]
    others = []
    for index in range(0, 40, 4):
        faces = backend.detect(np.asarray(lfw_face(index)))
        if faces:
            others.append(np.linalg.norm(faces[0].embedding - mine["original"]))
    assert len(others) >= 5
    assert max(same) < 0.6 < min(others)


def test_refuses_what_is_not_an_rgb_image(backend):
    with pytest.raises(ValueError):
        backend.detect(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError):
        backend.detect(np.zeros((10, 10, 3), dtype=np.float32))
