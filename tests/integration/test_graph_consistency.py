"""What must hold whatever happens: events exist iff their mutation committed; relations load without N+1;
every process serves a newly installed schema without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import requests
from bson.binary import UUID_SUBTYPE, Binary
from pymongo import monitoring

from functions.graph import registry, service
from runtime.identity import Identity
from runtime.ids import new_id, utcnow
from tests.conftest import free_port
from tests.fixtures.graph import FACES_SDL, PHOTOS_SDL

ROOT = Path(__file__).resolve().parents[2]

MUTATE = '''
import json, os, signal, sys
from functions.graph import service
from runtime.clients import Clients
from runtime.identity import Identity
from runtime.settings import load_settings

user, image, mode = sys.argv[1:4]
c = Clients(load_settings())


def die(session):
    # Tell the test which session is left open (it aborts it, as the server would after 60 s), then die.
    print(session.session_id["id"].hex(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


q = "mutation($d: JSON!) { createNode(type: \\"faces.Face\\", data: $d) { id } }"
out = service.run(c.db, c.mongo, Identity(user_id=user), {"query": q, "variables": {"d": {"image": image}}},
                  after_writes=die if mode == "kill" else None)
print(json.dumps(out))
'''


def _image(clients, user) -> str:
    out = service.run(clients.db, clients.mongo, Identity(user_id=user),
                      {"query": 'mutation { createNode(type: "photos.Image", data: {file_id: "f"}) { id } }'})
    return out["data"]["createNode"]["id"]


def _mutate_in_process(env, user, image, mode):
    return subprocess.run([sys.executable, "-c", MUTATE, user, image, mode], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_process_killed_inside_the_transaction_leaves_neither_node_nor_event(env, clients, make_user,
                                                                                install_photos):
    install_photos()
    survivor, victim = make_user().id, make_user().id
    # Control: the same mutation in the same kind of process commits its face, its event and the inverse side.
    image = _image(clients, survivor)
    done = _mutate_in_process(env, survivor, image, "commit")
    assert done.returncode == 0, done.stderr
    face = json.loads(done.stdout)["data"]["createNode"]["id"]
    assert clients.db.graph_nodes.find_one({"_id": image})["data"]["faces"] == [face]
    assert {e["type"] for e in clients.db.events.find({"subject": {"$in": [face, image]}})} == {
        "graph.node.created", "graph.node.updated"}
    # Now the process dies (SIGKILL) after writing the face, the image's inverse side and both events.
    image = _image(clients, victim)
    before = clients.db.graph_nodes.find_one({"_id": image})
    events_before = clients.db.events.count_documents({"owner": victim})
    died = _mutate_in_process(env, victim, image, "kill")
    assert died.returncode == -signal.SIGKILL, died.stderr
    lsid = bytes.fromhex(died.stdout.strip())
    clients.mongo.admin.command("killSessions", [{"id": Binary(lsid, UUID_SUBTYPE)}])
    assert clients.db.graph_nodes.count_documents({"owner": victim, "type": "faces.Face"}) == 0
    assert clients.db.graph_nodes.find_one({"_id": image}) == before
    assert clients.db.events.count_documents({"owner": victim}) == events_before == 1


class FindCounter(monitoring.CommandListener):
    def __init__(self):
        self.finds: list[str] = []

    def started(self, event):
        if event.command_name in ("find", "aggregate") and event.command.get(event.command_name) == "graph_nodes":
            self.finds.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def _graph(clients, user: str, images: int, faces_per_image: int, people: int):
    """A user's images, faces and people, inserted straight into the database (setup, not under test)."""
    now = utcnow()
    person_ids = [new_id() for _ in range(people)]
    docs = [{"_id": p, "owner": user, "type": "faces.Person", "rev": 1, "created_at": now, "updated_at": now,
             "data": {"name": f"P{i}", "faces": []}} for i, p in enumerate(person_ids)]
    face_docs = []
    for i in range(images):
        iid = new_id()
        fids = [new_id() for _ in range(faces_per_image)]
        docs.append({"_id": iid, "owner": user, "type": "photos.Image", "rev": 1, "created_at": now,
                     "updated_at": now, "data": {"file_id": f"f{i}", "name": f"img{i}", "faces": fids}})
        for j, fid in enumerate(fids):
            person = person_ids[(i + j) % people]
            face_docs.append({"_id": fid, "owner": user, "type": "faces.Face", "rev": 1, "created_at": now,
                              "updated_at": now, "data": {"image": iid, "person": person, "score": 0.5}})
    clients.db.graph_nodes.insert_many(docs + face_docs)


QUERY_FACES = '''{ nodes(type: "faces.Face", first: 500) { items { id ... on faces_Face {
  score image { id name } } } } }'''
QUERY_IMAGES = '''{ query_photos_Image(first: 300) { items { name faces(first: 2) { score person { name } } } } }'''


def test_relations_are_batched_not_one_query_per_node(settings, clients, make_user, install_photos):
    install_photos()
    counts = {}
    for size in (5, 500):
        user = make_user().id
        _graph(clients, user, images=size, faces_per_image=1, people=7)
        counter = FindCounter()
        client = pymongo.MongoClient(settings.mongo_url, event_listeners=[counter], tz_aware=True)
        try:
            db = client[clients.db.name]
            out = service.run(db, client, Identity(user_id=user), {"query": QUERY_FACES})
            assert not out.get("errors"), out
            items = out["data"]["nodes"]["items"]
            assert len(items) == size and all(i["image"]["name"].startswith("img") for i in items)
            faces_finds = len(counter.finds)
            counter.finds.clear()
            out = service.run(db, client, Identity(user_id=user), {"query": QUERY_IMAGES})
            assert not out.get("errors"), out
            assert all(len(i["faces"]) == 1 and i["faces"][0]["person"]["name"] for i in
                       out["data"]["query_photos_Image"]["items"])
            counts[size] = (faces_finds, len(counter.finds))
        finally:
            client.close()
    # One query for the page and one per relation level, whatever the number of nodes.
    assert counts[5] == counts[500] == (2, 3), counts


def _gateway_process(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([os.path.join(sys.prefix, "bin", "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1",
                             "gateway.wsgi:app"], env={**os.environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/healthz", timeout=5)
            return proc, url
        except requests.RequestException:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(f"gateway did not start: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.1)


def test_a_schema_installed_anywhere_is_served_by_every_process(env, clients, make_user):
    user = make_user()
    procs = [_gateway_process(env), _gateway_process(env)]
    try:
        def ask(url, query, variables=None):
            r = requests.post(f"{url}/graph/v1/graphql", json={"query": query, "variables": variables},
                              headers=user.headers, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        probe = '{ __type(name: "photos_Image") { name } }'
        for _, url in procs:
            assert ask(url, probe)["data"] == {"__type": None}
        registry.install_namespace(clients.db, "photos", PHOTOS_SDL, "image-importer")
        for _, url in procs:
            assert ask(url, probe)["data"] == {"__type": {"name": "photos_Image"}}
        first, second = procs[0][1], procs[1][1]
        made = ask(first, 'mutation { add_photos_Image(input: {file_id: "f1", name: "x"}) { id } }')
        img = made["data"]["add_photos_Image"]["id"]
        assert ask(second, "query($i: ID!) { get_photos_Image(id: $i) { name } }", {"i": img})["data"] == {
            "get_photos_Image": {"name": "x"}}
        # An upgrade and a second app reach both processes too.
        registry.install_namespace(clients.db, "faces", FACES_SDL, "face-detector", {"photos.Image"})
        face = ask(second, "mutation($i: ID!) { add_faces_Face(input: {image: $i}) { id } }", {"i": img})
        assert not face.get("errors"), face
        got = ask(first, "query($i: ID!) { get_photos_Image(id: $i) { faces { id } } }", {"i": img})
        assert got["data"]["get_photos_Image"]["faces"] == [{"id": face["data"]["add_faces_Face"]["id"]}]
        sdl = requests.get(f"{first}/graph/v1/schema.graphql", headers=user.headers, timeout=30).text
        assert "type faces_Face implements Node" in sdl
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            proc.wait(timeout=20)
