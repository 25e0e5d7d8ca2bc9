"""The photo apps: what the platform costs face detection, and how fast a photo becomes findable by a name.

1. Detection throughput at 640 px, one core: the face detector's model called directly in this process (decode +
   detect + embed, the baseline) against the face-detector app's `detect` action over HTTP (its own gunicorn,
   one worker thread) reading each photo from /files/v1 and writing Faces/People through the real graph of a
   gateway, in the same run. Prints images/s of both and the ratio (goal ≥ 0.8).
2. With the application platform (`--milestone`, needs functions/apps on main): install + approve the three
   bundled apps, name a person, then upload photos of them into /Camera one at a time and time commit → the
   photo found by the person's name in /search/v1 (p50/p99). The detector is installed after photos exist,
   approved with `replay: true`: images/s with a progress bar.

Usage: python -m bench.bench_photos [--images N] [--milestone] [--photos N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import requests

from bench.common import ROOT, bench_env, free_port, gunicorn, new_bench_user, start_process

DETECTOR_DIR = os.path.join(ROOT, "apps", "face-detector")
IMPORTER_DIR = os.path.join(ROOT, "apps", "image-importer")


def wait_for(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def photos_640(count: int) -> list[bytes]:
    """640-px JPEGs made from scikit-image's pictures: the astronaut (one face) in many guises, and no-face
    pictures, about two faces to one without."""
    import io

    from PIL import Image, ImageEnhance, ImageOps
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((640, 640))
    others = [Image.fromarray(getattr(data, n)()) for n in ("coffee", "chelsea", "rocket")]
    out = []
    for i in range(count):
        if i % 3 == 2:
            image = others[i % len(others)]
            image = image.resize((640, round(640 * image.height / image.width)))
        else:
            image = ImageOps.mirror(face) if i % 2 else face
        image = ImageEnhance.Brightness(image).enhance(0.8 + 0.4 * (i % 7) / 6)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


def direct_model():
    """The baseline: the app's own decode + model, called in this process."""
    sys.path.insert(0, DETECTOR_DIR)
    from face_detector import images
    from face_detector.model import load_model

    model = load_model("dlib")

    def run(data: bytes) -> int:
        return len(model.detect(images.load(data)[0]))

    return run


def upload(base: str, token: str, parent_id: str, name: str, data: bytes) -> dict:
    import hashlib

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    digest = hashlib.sha256(data).hexdigest()
    negotiated = http.post(f"{base}/files/v1/uploads", timeout=120, json={
        "parent_id": parent_id, "name": name, "size": len(data), "blocks": [{"hash": digest, "size": len(data)}]})
    negotiated.raise_for_status()
    body = negotiated.json()
    for target in body["missing"]:
        requests.request(target["method"], target["url"], data=data, headers=target["headers"],
                         timeout=120).raise_for_status()
    committed = http.post(f"{base}/files/v1/uploads/{body['upload_id']}/commit", timeout=120)
    committed.raise_for_status()
    return committed.json()


def interleaved(photos: list[bytes], env: dict, settings, token: str) -> dict:
    """Each photo through the model directly, then through the app's detect action over HTTP against the real
    gateway: interleaved, so both see the same load on a shared machine."""
    baseline = direct_model()
    base = settings.public_url
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    root = http.get(f"{base}/files/v1/root", timeout=30).json()
    camera = http.post(f"{base}/files/v1/folders", json={"parent_id": root["id"], "name": "Camera"}, timeout=30).json()
    image_ids = []
    for i, data in enumerate(photos):
        node = upload(base, token, camera["id"], f"IMG_{i:04d}.jpg", data)
        made = http.post(f"{base}/graph/v1/graphql", timeout=30, json={
            "query": "mutation($d: JSON!) { createNode(type: \"photos.Image\", data: $d) { id } }",
            "variables": {"d": {"file_id": node["id"], "name": node["name"], "path": f"/Camera/{node['name']}",
                                "width": 640, "height": 640}}}).json()
        image_ids.append(made["data"]["createNode"]["id"])
    port = free_port()
    app = start_process([gunicorn(), "-w", "1", "--threads", "1", "-b", f"127.0.0.1:{port}", "--chdir", DETECTOR_DIR,
                         "face_detector.web:create_app()"], {**env, "PYTHONPATH": DETECTOR_DIR})
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        call = requests.Session()

        def detect(image_id: str) -> dict:
            answer = call.post(f"http://127.0.0.1:{port}/actions/detect", timeout=120, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": image_id}, json={
                "execution_id": image_id, "action": "detect", "params": {"image_id": image_id},
                "settings": {"min_faces": 2, "match_distance": 0.6}, "api_url": base})
            answer.raise_for_status()
            return answer.json()

        warm = upload(base, token, root["id"], "warm.jpg", photos[0])
        warm_image = http.post(f"{base}/graph/v1/graphql", timeout=30, json={
            "query": "mutation($d: JSON!) { createNode(type: \"photos.Image\", data: $d) { id } }",
            "variables": {"d": {"file_id": warm["id"], "name": "warm.jpg", "path": "/warm.jpg"}}}).json()
        detect(warm_image["data"]["createNode"]["id"])  # loads the model in the app process
        baseline(photos[0])
        out = {"direct_s": 0.0, "app_s": 0.0, "direct_faces": 0, "app_faces": 0}
        for data, image_id in zip(photos, image_ids, strict=True):
            start = time.perf_counter()
            out["direct_faces"] += baseline(data)
            middle = time.perf_counter()
            out["app_faces"] += detect(image_id).get("faces", 0)
            out["app_s"] += time.perf_counter() - middle
            out["direct_s"] += middle - start
        return out
    finally:
        app.terminate()
        app.wait(10)


def detection(args) -> None:
    from functions.graph import registry
    from runtime.clients import Clients
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    photos = photos_640(args.images)
    env = bench_env()
    settings = load_settings(env)
    clients = Clients(settings)
    owner = new_bench_user(clients.db)
    token, _ = issue_access_token(clients.keys, settings, sub=owner, aud="pcloud")
    registry.install_namespace(clients.db, "photos", Path(IMPORTER_DIR, "schema.graphql").read_text(),
                               "image-importer")
    registry.install_namespace(clients.db, "faces", Path(DETECTOR_DIR, "schema.graphql").read_text(),
                               "face-detector", extend_grants={"photos.Image"})
    gateway = start_process([gunicorn(), "-w", "2", "-k", "gthread", "--threads", "4", "-b", settings.bind,
                             "gateway.wsgi:app"], env)
    try:
        wait_for(f"{settings.public_url}/healthz")
        got = interleaved(photos, env, settings, token)
        base_rate, app_rate = len(photos) / got["direct_s"], len(photos) / got["app_s"]
        print(f"detection at 640 px, one core, {len(photos)} photos ({got['direct_faces']} faces), interleaved:")
        print(f"  model directly (decode + detect + embed): {base_rate:6.2f} images/s")
        print(f"  face-detector app over HTTP (read from /files/v1, Faces and People through the graph): "
              f"{app_rate:6.2f} images/s, {got['app_faces']} faces")
        print(f"  ratio app / model: {app_rate / base_rate:.2f} (goal >= 0.8)")
    finally:
        gateway.terminate()
        gateway.wait(10)
        clients.mongo.drop_database(clients.db.name)
        clients.close()
        shutil.rmtree(settings.data_dir, ignore_errors=True)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def milestone(args) -> None:
    """The whole stack as `make run` has it: gateway (gunicorn), app runner, event processor, search indexer."""
    import io

    from PIL import Image, ImageEnhance
    from skimage import data

    from runtime import users
    from runtime.clients import Clients
    from runtime.identity import ADMIN_SCOPE, USER_SCOPES
    from runtime.settings import load_settings
    from runtime.tokens import issue_access_token

    env = bench_env()
    settings = load_settings(env)
    clients = Clients(settings)
    admin = users.ensure_by_email(clients.db, "admin@bench.test", "Admin")
    users.set_role(clients.db, admin["_id"], "admin")
    user = users.ensure_by_email(clients.db, "ann@bench.test", "Ann")
    admin_token, _ = issue_access_token(clients.keys, settings, sub=admin["_id"], aud="pcloud",
                                        scopes=[*USER_SCOPES, ADMIN_SCOPE])
    token, _ = issue_access_token(clients.keys, settings, sub=user["_id"], aud="pcloud")
    procs = [start_process([gunicorn(), "-w", "2", "-k", "gthread", "--threads", "8", "-b", settings.bind,
                            "gateway.wsgi:app"], env)]
    for module in ("functions.apps.runner", "functions.apps.processor", "functions.search.indexer"):
        procs.append(start_process([sys.executable, "-m", module], env))
    base = settings.public_url
    as_admin, as_user = requests.Session(), requests.Session()
    as_admin.headers["Authorization"] = f"Bearer {admin_token}"
    as_user.headers["Authorization"] = f"Bearer {token}"

    def until(predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {what}")

    def install(name: str, replay: bool = False) -> None:
        assert as_admin.post(f"{base}/apps/v1/apps", json={"catalog": name}, timeout=60).status_code == 201
        as_admin.post(f"{base}/apps/v1/apps/{name}/approve", json={"replay": replay}, timeout=120)
        until(lambda: as_admin.get(f"{base}/apps/v1/apps/{name}", timeout=30).json()["state"] == "active", 600,
              f"{name} active")

    def faces() -> int:
        answer = as_user.post(f"{base}/graph/v1/graphql", timeout=30, json={
            "query": '{ nodes(type: "faces.Face", first: 500) { items { id } } }'}).json()
        return len(((answer.get("data") or {}).get("nodes") or {}).get("items") or [])

    def hits(q: str) -> int:
        return len(as_user.get(f"{base}/search/v1", params={"q": q, "limit": 100}, timeout=30).json()["items"])

    def first_person():
        answer = as_user.post(f"{base}/graph/v1/graphql", timeout=30, json={
            "query": '{ nodes(type: "faces.Person") { items { id } } }'}).json()
        return ((answer.get("data") or {}).get("nodes", {}).get("items") or [None])[0]

    face = Image.fromarray(data.astronaut()).resize((640, 640))

    def photo(i: int) -> bytes:
        buffer = io.BytesIO()
        ImageEnhance.Brightness(face).enhance(0.75 + 0.25 * i / max(args.photos, 1)).save(buffer, "JPEG", quality=88)
        return buffer.getvalue()

    try:
        wait_for(f"{base}/healthz")
        started = time.perf_counter()
        install("image-importer")
        print(f"install + approve of image-importer from the catalog: {time.perf_counter() - started:.1f} s")
        root = as_user.get(f"{base}/files/v1/root", timeout=30).json()
        camera = until(lambda: next((c for c in as_user.get(f"{base}/files/v1/nodes/{root['id']}/children",
                                                            timeout=30).json()["items"] if c["name"] == "Camera"),
                                    None), 60, "/Camera")
        for i in range(args.photos):
            upload(base, token, camera["id"], f"OLD_{i:04d}.jpg", photo(i))
        until(lambda: hits("old") >= args.photos, 300, "the existing photos imported")

        started = time.perf_counter()
        install("face-detector", replay=True)
        done, last = 0, -1
        while done < args.photos and time.perf_counter() - started < 900:
            done = faces()
            if done != last:
                print(f"\r  replay [{'#' * int(done / args.photos * 30):<30}] {done}/{args.photos} photos", end="",
                      flush=True)
                last = done
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        print(f"\nface-detector installed after {args.photos} photos exist (approve with replay): all processed in "
              f"{elapsed:.1f} s, {done / elapsed:.2f} images/s (install included)")
        install("photos-ui")

        person = until(first_person, 180, "a person")
        as_user.post(f"{base}/graph/v1/graphql", timeout=30, json={
            "query": 'mutation($id: ID!) { updateNode(id: $id, data: {name: "Eileen Collins"}) { rev } }',
            "variables": {"id": person["id"]}})
        until(lambda: hits("eileen") == args.photos + 1, 120, "the named person and the photos showing them")
        latencies = []
        for i in range(1, args.photos + 1):
            upload(base, token, camera["id"], f"IMG_{i:04d}.jpg", photo(args.photos + i))
            committed = time.perf_counter()
            until(lambda i=i: hits("eileen") >= args.photos + 1 + i, 120, f"photo {i} findable by name")
            latencies.append(time.perf_counter() - committed)
        print(f"photo committed -> found by the person's name in /search/v1 ({len(latencies)} photos, one at a "
              f"time): p50 {_percentile(latencies, 0.5):.2f} s, p99 {_percentile(latencies, 0.99):.2f} s, "
              f"max {max(latencies):.2f} s (goal p50 <= 3 s, p99 <= 10 s)")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(20)
        clients.mongo.drop_database(clients.db.name)
        clients.close()
        shutil.rmtree(settings.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="photos for the detection throughput")
    parser.add_argument("--milestone", action="store_true", help="also commit → searchable and replay (needs apps)")
    parser.add_argument("--photos", type=int, default=20, help="photos timed commit → searchable")
    args = parser.parse_args()
    detection(args)
    if args.milestone:
        milestone(args)


if __name__ == "__main__":
    main()
