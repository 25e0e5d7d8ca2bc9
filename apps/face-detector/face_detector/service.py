"""What each action does, given a PCloud client and a FaceModel (no Flask here).

Everything is written through the generic graph API (§7) with the invocation token, so the detector sees and
touches only the calling user's nodes. Search by a person's name works at app level: a Person's `name` is an
@search field, and each Image carries `people` (the names of the people in it, kept current here) as one too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from face_detector import grouping, images
from face_detector.model import FaceModel
from face_detector.pcloud import Gone, PCloud, Refused, TooBig

IMAGE, FACE, PERSON = "photos.Image", "faces.Face", "faces.Person"


class BadParams(Exception):
    """The caller asked for something that cannot be done (unknown person, merge into itself)."""


@dataclass(frozen=True)
class Options:
    min_faces: int = 2
    match_distance: float = 0.6

    @classmethod
    def of(cls, settings: dict | None) -> Options:
        settings = settings or {}
        min_faces = settings.get("min_faces", cls.min_faces)
        distance = settings.get("match_distance", cls.match_distance)
        if not isinstance(min_faces, int) or isinstance(min_faces, bool) or min_faces < 1:
            min_faces = cls.min_faces
        if not isinstance(distance, (int, float)) or not 0 < distance <= 2:
            distance = cls.match_distance
        return cls(min_faces=min_faces, match_distance=float(distance))


def _id(value) -> str | None:
    return value.get("id") if isinstance(value, dict) else value


# --------------------------------------------------------------------------------------------- detect


def detect(api: PCloud, model: FaceModel, settings: dict, image_id: str) -> dict:
    """Find the faces of one Image (again, if its file changed), group them, keep the Image's `people` current.
    Round trips are few and batched: the graph is where the time goes, not the model."""
    image = api.node(image_id)
    if image is None or image.get("type") != IMAGE:
        return {"skipped": "the image is gone", **forget_image(api, image_id)}
    try:
        data = api.read_file(image["data"].get("file_id") or "")
    except Gone:
        return {"skipped": "the file is gone", **forget_image(api, image_id)}
    except TooBig as exc:
        return {"skipped": "not an image", "reason": str(exc), **forget_image(api, image_id)}
    digest = hashlib.sha256(data).hexdigest()
    if image["data"].get("faces_of") == digest:
        expected = len(image["data"].get("faces") or [])
        if expected == 0 or len(api.nodes(FACE, {"image": image_id})) == expected:
            return {"skipped": "unchanged", "faces": expected}
        # the faces went (the detector was reinstalled with its nodes purged, say): detect again
    try:
        rgb, factor, width, height = images.load(data)
    except images.NotAnImage as exc:
        return {"skipped": "not an image", "reason": str(exc), **forget_image(api, image_id)}
    found = model.detect(rgb)

    if image["data"].get("faces") or image["data"].get("faces_of"):
        forget_image(api, image_id)  # the file changed: its old faces go
        if image["data"].get("faces"):
            api.update(image_id, {"faces": None})  # ids of faces purged without the graph unlinking them
    faces: list[dict] = []
    try:
        if found:
            faces = group(api, Options.of(settings), image_id, found, factor, width, height, model.name, digest)
        else:
            api.update(image_id, {"faces_of": digest, "people": ""})
    except (Gone, Refused):
        if api.node(image_id) is None:  # trashed while we looked at it: leave nothing behind
            forget_image(api, image_id)
            return {"skipped": "the image is gone", "faces": 0}
        raise
    return {"faces": len(faces), "boxes": [f["data"]["box"] for f in faces]}


def _delete_all(api: PCloud, nodes: list[dict]) -> None:
    touched = {_id(n["data"].get("person")) for n in nodes} - {None}
    for node in nodes:
        api.delete(node["id"])
    for person_id in touched:
        refresh_person(api, person_id)


# --------------------------------------------------------------------------------------------- grouping


def group(api: PCloud, options: Options, image_id: str, found: list, factor: float, width: int, height: int,
          model_name: str, digest: str) -> list[dict]:
    """Write an image's faces already grouped: each joins the nearest person within match_distance, and the
    Faces, the people's counts and the Image's search text go in one request (Image.faces is the graph's
    @inverse of Face.image). Faces that join nobody wait in the pool for `cluster_pool`. Returns the Faces."""
    people = {p["id"]: p for p in api.nodes(PERSON)}
    centroids = {pid: grouping.as_vector(p["data"]["centroid"]) for pid, p in people.items()
                 if p["data"].get("centroid")}
    creates, joined = [], {}
    for face in found:
        person_id = grouping.nearest(face.embedding, centroids, options.match_distance)
        data = {"image": image_id, "box": face.box.scaled(factor, width, height).as_dict(),
                "score": round(face.score, 4), "grouped": person_id is not None,
                "embedding": grouping.rounded(face.embedding), "model": model_name}
        if person_id:
            data["person"] = person_id
            joined.setdefault(person_id, []).append(face)
        creates.append((FACE, data))
    updates = []
    for person_id, faces in joined.items():
        count = int(people[person_id]["data"].get("face_count") or 0)
        mean = (centroids[person_id] * count + sum(f.embedding for f in faces)) / (count + len(faces))
        updates.append((person_id, {"face_count": count + len(faces), "centroid": grouping.rounded(mean)}))
    names = [people[p]["data"].get("name") for p in joined]
    updates.append((image_id, {"faces_of": digest, "people": " ".join(dict.fromkeys(n for n in names if n))}))
    written = api.batch(creates=creates, updates=updates)
    faces = written[:len(creates)]
    if joined and _renamed_since(api, {pid: people[pid] for pid in joined}):
        # a person renamed while this image was being detected: its rename trigger ran before these faces
        # existed and could not see this image, so its search text is made again from the names as they are now
        api.update(image_id, {"people": people_text(api, image_id)})
    covers = [(pid, next(f for f in faces if f["data"].get("person") == pid)) for pid in joined
              if not _id(people[pid]["data"].get("cover"))]
    if covers:
        api.batch(updates=[(pid, {"cover": face["id"]}) for pid, face in covers])
    if all(f["data"].get("person") for f in faces):
        return faces  # the pool did not grow: no new cluster can have formed
    cluster_pool(api, options)
    return faces


def cluster_pool(api: PCloud, options: Options) -> list[str]:
    """DBSCAN over every ungrouped face; each group of min_faces becomes a new (unnamed) person. Faces already
    grouped are never moved. Returns the new people's ids."""
    pool = {f["id"]: f for f in api.nodes(FACE, {"grouped": False})}
    vectors = {fid: grouping.as_vector(f["data"]["embedding"]) for fid, f in pool.items()
               if f["data"].get("embedding")}
    made = []
    for ids in grouping.clusters(vectors, options.min_faces, options.match_distance):
        faces = [pool[i] for i in ids]
        cover = max(faces, key=lambda f: f["data"].get("score", 0))
        person = api.create(PERSON, {"hidden": False, "face_count": len(faces), "cover": cover["id"],
                                     "centroid": grouping.rounded(grouping.centroid([vectors[i] for i in ids]))})
        try:
            api.batch(updates=[(face["id"], {"person": person["id"], "grouped": True}) for face in faces])
        except Refused:  # the user merged or deleted the new person meanwhile: faces left wait for the next run
            continue
        made.append(person["id"])
    return made


def refresh_person(api: PCloud, person_id: str) -> dict | None:
    """face_count, centroid and cover from the faces it has now; an unnamed person with no face left goes."""
    person = api.node(person_id)
    if person is None:
        return None
    faces = api.nodes(FACE, {"person": person_id})
    if not faces:
        if not person["data"].get("name"):
            api.delete(person_id)
            return None
        return api.update(person_id, {"face_count": 0, "cover": None})
    vectors = [grouping.as_vector(f["data"]["embedding"]) for f in faces if f["data"].get("embedding")]
    update = {"face_count": len(faces)}
    if vectors:
        update["centroid"] = grouping.rounded(grouping.centroid(vectors))
    if _id(person["data"].get("cover")) not in {f["id"] for f in faces}:
        update["cover"] = max(faces, key=lambda f: f["data"].get("score", 0))["id"]
    return api.update(person_id, update)


def recluster(api: PCloud, settings: dict) -> dict:
    """On demand (e.g. after min_faces changed): DBSCAN over the ungrouped faces. Grouped faces stay put."""
    return {"people_made": len(cluster_pool(api, Options.of(settings)))}


# --------------------------------------------------------------------------------------------- search text


def _renamed_since(api: PCloud, seen: dict[str, dict]) -> bool:
    """Whether any of these people has another name (or is gone) than when they were read."""
    for person_id, before in seen.items():
        now = api.node(person_id)
        if now is None or (now.get("data") or {}).get("name") != before["data"].get("name"):
            return True
    return False


def people_text(api: PCloud, image_id: str) -> str:
    """The names of the people in an image, for its `people` @search field."""
    names: list[str] = []
    for person_id in dict.fromkeys(_id(f["data"].get("person")) for f in api.nodes(FACE, {"image": image_id})):
        person = api.node(person_id) if person_id else None
        name = (person or {}).get("data", {}).get("name")
        if name and name not in names:
            names.append(name)
    return " ".join(names)


def refresh_images(api: PCloud, image_ids) -> int:
    count = 0
    for image_id in {i for i in image_ids if i}:
        try:
            api.update(image_id, {"people": people_text(api, image_id)})
            count += 1
        except Gone:
            pass
    return count


def person_changed(api: PCloud, person_id: str) -> dict:
    """A user renamed or deleted a Person: the Images showing them get their `people` text again; a deleted
    person's faces go back to the pool."""
    person = api.node(person_id)
    faces = api.nodes(FACE, {"person": person_id})
    if person is None:
        for face in faces:
            api.update(face["id"], {"person": None, "grouped": False})
    return {"images": refresh_images(api, [_id(f["data"].get("image")) for f in faces])}


# --------------------------------------------------------------------------------------------- removal, merge


def forget_image(api: PCloud, image_id: str) -> dict:
    """An Image went (its file was trashed) or changed: its faces go, and their people are recounted. Deleting an
    Image makes the graph unset its Faces' `image` (the @inverse of Image.faces), so faces with no image go too."""
    faces = {f["id"]: f for f in api.nodes(FACE, {"image": image_id})}
    faces.update((f["id"], f) for f in api.nodes(FACE, {"image": None}))
    _delete_all(api, list(faces.values()))
    return {"faces_removed": len(faces)}


def merge_people(api: PCloud, into: str, sources: list[str]) -> dict:
    """Every face of `sources` becomes `into`'s; the sources go. `into` keeps its name, or takes the first
    source's name when it has none."""
    if not isinstance(into, str) or not isinstance(sources, list) or not sources:
        raise BadParams("merge-people takes {into: person id, from: [person ids]}")
    if into in sources:
        raise BadParams("a person cannot be merged into itself")
    target = api.node(into)
    if target is None or target.get("type") != PERSON:
        raise BadParams(f"no person {into}")
    others = []
    for source_id in dict.fromkeys(sources):
        source = api.node(source_id)
        if source is None or source.get("type") != PERSON:
            raise BadParams(f"no person {source_id}")
        others.append(source)
    images_touched, moved = set(), 0
    for source in others:
        for _ in range(3):  # a detection grouping faces into the source right now: take those too
            faces = api.nodes(FACE, {"person": source["id"]})
            if not faces:
                break
            api.batch(updates=[(face["id"], {"person": into, "grouped": True}) for face in faces])
            images_touched.update(_id(face["data"].get("image")) for face in faces)
            moved += len(faces)
        api.delete(source["id"])
    if not target["data"].get("name"):
        name = next((s["data"].get("name") for s in others if s["data"].get("name")), None)
        if name:
            api.update(into, {"name": name})
    refresh_person(api, into)
    images_touched.update(_id(f["data"].get("image")) for f in api.nodes(FACE, {"person": into}))
    return {"into": into, "merged": [s["id"] for s in others], "faces_moved": moved,
            "images": refresh_images(api, images_touched)}
