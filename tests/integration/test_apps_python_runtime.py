"""The python runtime (CONTRACT §8 `runtime.python`): venv + requirements at install, gunicorn on loopback with a
clean environment, restarted by the runner when it dies; pip's failure reported in the app's state."""

from __future__ import annotations

import os
import signal

import pytest

from functions.apps.runtimes import answers_http, pid_alive
from tests.fixtures.apps import make_archive, unique_name, wait_for

WSGI = '''
import json
import os


def create_app():
    def app(environ, start_response):
        body = json.dumps({"env": sorted(os.environ), "api": os.environ.get("PCLOUD_API_URL")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return app
'''


def manifest(name: str, requirements: str | None = None) -> dict:
    python = {"wsgi": "hello.web:create_app()"}
    if requirements:
        python["requirements"] = "requirements.txt"
    return {"name": name, "version": "1.0.0", "title": name, "namespace": name.replace("-", "")[:30],
            "runtime": {"python": python}, "actions": {"env": {"path": "/actions/env", "timeout_s": 10}}}


@pytest.fixture
def admin(make_user):
    return make_user(name="Admin", admin=True)


def submit(client, admin, doc, files):
    resp = client.post("/apps/v1/apps", data=make_archive(doc, files),
                       headers={**admin.headers, "Content-Type": "application/gzip"})
    assert resp.status_code == 201, resp.json
    client.post(f"/apps/v1/apps/{doc['name']}/approve", json={}, headers=admin.headers)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_runs_with_a_clean_env_and_is_restarted_when_it_dies(client, admin, runner, clients, settings):
    name = unique_name("py")
    submit(client, admin, manifest(name, requirements="yes"),
           {"hello/__init__.py": "", "hello/web.py": WSGI, "requirements.txt": "# nothing extra\n"})
    runner.tick()
    app = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert app["state"] == "active", app
    doc = clients.db.apps.find_one({"_id": name})
    assert doc["endpoint"].startswith("http://127.0.0.1:") and answers_http(doc["endpoint"])
    assert (settings.apps_dir / name / ".venv-1.0.0" / "bin" / "python").exists()
    resp = client.post(f"/apps/v1/actions/{name}/env", json={}, headers=admin.headers)
    result = resp.json["execution"]["result"]
    assert result["api"] == settings.app_api_url
    assert not [k for k in result["env"] if k.startswith(("PCLOUD_MONGO", "PCLOUD_REDIS", "PCLOUD_AMQP", "AWS_"))]
    assert set(result["env"]) <= {"PATH", "PCLOUD_API_URL", "PORT", "PYTHONPATH", "PYTHONUNBUFFERED", "HOME",
                                  "LC_CTYPE", "SERVER_SOFTWARE", "PWD"}
    # the runtime dies: the runner starts it again
    os.killpg(doc["pid"], signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(doc["pid"]), timeout=10)
    runner.supervise()
    again = clients.db.apps.find_one({"_id": name})
    assert again["pid"] != doc["pid"] and answers_http(again["endpoint"])
    assert client.post(f"/apps/v1/actions/{name}/env", json={}, headers=admin.headers).json["execution"][
        "state"] == "done"
    # uninstall: the runner stops the process on its next pass
    assert client.delete(f"/apps/v1/apps/{name}", headers=admin.headers).status_code == 204
    runner.supervise()
    assert wait_for(lambda: not pid_alive(again["pid"]), timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pip_failure_is_failed_with_pips_reason(client, admin, runner, clients):
    name = unique_name("py")
    submit(client, admin, manifest(name, requirements="yes"),
           {"hello/__init__.py": "", "hello/web.py": WSGI,
            "requirements.txt": "./no-such-local-package-dir\n"})
    runner.tick()
    app = client.get(f"/apps/v1/apps/{name}", headers=admin.headers).json
    assert app["state"] == "failed"
    assert app["error"].startswith("pip install failed:") and "no-such-local-package-dir" in app["error"]
