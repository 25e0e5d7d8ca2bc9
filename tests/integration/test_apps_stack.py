"""Against the running stack: the gateway over HTTP, the runner and the event processor as their own processes.

* Done when (issue 15): an archive written only against CONTRACT §8 and the SDK (examples/tagger) installs, is
  approved, extends the schema, gets its trigger fired by a graph mutation, writes back through the graph with its
  invocation token, and is refused what it was not granted.
* Chaos: the processor SIGKILLed mid-burst of 200 events — every execution done, none under two ids, none lost.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import requests

from runtime import events
from tests.fixtures.apps import make_archive, unique_name, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """The Procfile's `apps` and `events` processes for this test's settings."""

    def __init__(self, env: dict, log_dir: Path):
        self.env = {**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, module: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for name in list(self.procs):
            try:
                self.kill(name, signal.SIGTERM)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill(name, signal.SIGKILL)


@pytest.fixture
def stack(env, tmp_path, gateway):
    found = Stack(env, tmp_path)
    yield found
    found.stop()


@pytest.fixture
def admin(make_user):
    return make_user(name="Admin", admin=True)


def tagger_archive() -> bytes:
    """examples/tagger with the SDK vendored, exactly as its README builds it."""
    buf = io.BytesIO()
    example = ROOT / "examples" / "tagger"
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(example.rglob("*")):
            rel = path.relative_to(example)
            if path.is_file() and rel.parts[0] != "tests" and "__pycache__" not in rel.parts:
                tar.add(path, arcname=str(rel))
        sdk = ROOT / "sdk" / "python" / "pcloud_sdk"
        for path in sorted(sdk.glob("*.py")):
            tar.add(path, arcname=f"pcloud_sdk/{path.name}")
    return buf.getvalue()


def gql(url: str, user, query: str, variables=None) -> dict:
    resp = requests.post(f"{url}/graph/v1/graphql", json={"query": query, "variables": variables or {}},
                         headers=user.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def submit(url: str, admin, archive: bytes, replay: bool = False) -> str:
    resp = requests.post(f"{url}/apps/v1/apps", data=archive, timeout=30,
                         headers={**admin.headers, "Content-Type": "application/gzip"})
    assert resp.status_code == 201, resp.text
    name = resp.json()["name"]
    assert requests.post(f"{url}/apps/v1/apps/{name}/approve", json={"replay": replay}, headers=admin.headers,
                         timeout=10).status_code == 202
    return name


def state_of(url: str, admin, name: str) -> dict:
    return requests.get(f"{url}/apps/v1/apps/{name}", headers=admin.headers, timeout=10).json()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_done_when_an_archive_written_to_the_contract_runs_on_the_stack(stack, gateway, admin, make_user,
                                                                          app_server, settings, clients):
    url = gateway.url
    stack.start("apps", "functions.apps.runner")
    stack.start("events", "functions.apps.processor")
    # another app owns notes.Note (a url runtime with a schema only); the tagger may read Notes, not write them
    notes = make_archive({"name": "notes", "version": "1.0.0", "title": "Notes", "namespace": "notes",
                          "schema": "schema.graphql", "runtime": {"url": app_server.url}},
                         {"schema.graphql": "type Note @node { title: String @search }\n"})
    submit(url, admin, notes)
    assert wait_for(lambda: state_of(url, admin, "notes")["state"] == "active", timeout=60), stack.log("apps")
    shutil.rmtree(settings.apps_dir / "tagger", ignore_errors=True)
    requested = requests.post(f"{url}/apps/v1/apps", data=tagger_archive(), timeout=30,
                              headers={**admin.headers, "Content-Type": "application/gzip"}).json()
    assert requested["state"] == "pending_approval"
    assert requested["requests"]["types"] == {"notes.Note": ["read"]}
    assert requested["requests"]["schema_types"] == ["tagger.Tag"]
    requests.post(f"{url}/apps/v1/apps/tagger/approve", json={}, headers=admin.headers, timeout=10)
    active = wait_for(lambda: (s := state_of(url, admin, "tagger"))["state"] in ("active", "failed") and s,
                      timeout=180)
    assert active and active["state"] == "active", (active, stack.log("apps"))
    assert "tagger_Tag" in requests.get(f"{url}/graph/v1/schema.graphql", headers=admin.headers, timeout=10).text

    user = make_user(name="Ann")
    made = gql(url, user, 'mutation { createNode(type: "notes.Note", data: {title: "Groceries for Sunday"}) '
                          '{ id data } }')
    note_id = made["data"]["createNode"]["id"]

    def done_execution():
        items = requests.get(f"{url}/apps/v1/executions?app=tagger", headers=user.headers, timeout=10).json()["items"]
        return items and items[0]["state"] in ("done", "dead") and items[0]

    execution = wait_for(done_execution, timeout=60)
    assert execution, (stack.log("events"), stack.log("apps"))
    assert execution["state"] == "done", execution
    assert execution["trigger"] == "on-note" and execution["result"]["label"] == "#groceries"
    assert execution["result"]["write_refused"] == "FORBIDDEN"  # notes.Note was granted read only
    tags = gql(url, user, '{ nodes(type: "tagger.Tag") { items { id data } } }')["data"]["nodes"]["items"]
    assert [t["data"] for t in tags] == [{"label": "#groceries", "target": note_id}]
    note = gql(url, user, "query($id: ID!) { node(id: $id) { data } }", {"id": note_id})["data"]["node"]
    assert note["data"] == {"title": "Groceries for Sunday"}
    # the Tag's own event was caused by the tagger's execution: it carries the cause, and nothing loops
    tag_events = requests.get(f"{url}/events/v1?type=graph.node.created", headers=user.headers,
                              timeout=10).json()["items"]
    tag_event = next(e for e in tag_events if e["subject"] == tags[0]["id"])
    assert tag_event["cause"]["app"] == "tagger" and tag_event["cause"]["execution_id"] == execution["id"]
    # and the web UI is served same-origin through the gateway
    page = requests.get(f"{url}/apps/tagger/", headers=user.headers, timeout=10)
    assert page.status_code == 200 and "Signed in as someone" in page.text
    # uninstall stops it at once, and the runner stops its process
    from functions.apps.runtimes import answers_http

    endpoint = clients.db.apps.find_one({"_id": "tagger"})["endpoint"]
    assert answers_http(endpoint)
    assert requests.delete(f"{url}/apps/v1/apps/tagger", headers=admin.headers, timeout=10).status_code == 204
    assert requests.get(f"{url}/apps/tagger/", headers=user.headers, timeout=10).status_code == 404
    assert wait_for(lambda: not answers_http(endpoint, timeout=0.5), timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chaos_processor_sigkilled_mid_burst(stack, gateway, admin, app_server, clients):
    url = gateway.url
    name = unique_name("chaos")
    app_server.behaviours["/handle"] = lambda body, headers: (time.sleep(0.02), (200, {"ok": True}))[1]
    doc = {"name": name, "version": "1.0.0", "title": "chaos", "namespace": name.replace("-", "")[:30],
           "runtime": {"url": app_server.url},
           "actions": {"handle": {"path": "/handle", "timeout_s": 2, "concurrency": 8}},
           "triggers": [{"name": "on-any", "event": "graph.node.created", "run": "handle",
                         "params": {"n": "{{ event.subject }}"}, "retry": {"attempts": 10, "backoff_s": 0.5}}]}
    stack.start("apps", "functions.apps.runner")
    submit(url, admin, make_archive(doc))
    assert wait_for(lambda: state_of(url, admin, name)["state"] == "active", timeout=60), stack.log("apps")
    stack.start("events", "functions.apps.processor")
    time.sleep(1.0)
    ids = []
    for i in range(200):
        ids.append(events.append(clients.db, owner=admin.id, type="graph.node.created", subject=f"node-{i}",
                                 node_type="x.Y", data={"node": {"id": f"node-{i}"}})["id"])
        if i == 60:
            assert app_server.wait_calls("/handle", 20, timeout=30)
            stack.kill("events")  # SIGKILL: no cleanup, leases left behind
            stack.start("events", "functions.apps.processor")
    settled = wait_for(lambda: clients.db.executions.count_documents({"app": name, "state": "done"}) == 200,
                       timeout=120, interval=0.5)
    assert settled, (list(clients.db.executions.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])),
                     stack.log("events"))
    assert clients.db.executions.count_documents({"app": name}) == 200
    # events the killed processor had claimed come back after their 30 s consumer lease
    ok = wait_for(lambda: all(events.get_event(clients.db, i)["state"] == "done" for i in ids), timeout=90,
                  interval=1.0)
    assert ok, [(e["state"], e.get("pending"), e.get("claims"), e["subject"]) for e in
                clients.db.events.find({"_id": {"$in": ids}, "state": {"$ne": "done"}})][:5]
    by_node: dict[str, set] = {}
    for call in app_server.calls_to("/handle"):
        by_node.setdefault(call["body"]["params"]["n"], set()).add(call["body"]["execution_id"])
    assert len(by_node) == 200  # none lost
    assert all(len(v) == 1 for v in by_node.values())  # a re-run is under the same id
