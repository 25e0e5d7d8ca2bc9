"""The gateway against real services: routing, errors, limits, auth, CORS, health, metrics, proxy mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from runtime.identity import USER_SCOPES
from runtime.tokens import issue_access_token
from tests.conftest import free_port


def test_healthz_and_readyz_report_all_four_dependencies(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json == {"status": "ok", "checks": {"mongo": "ok", "redis": "ok", "amqp": "ok", "store": "ok"}}


def test_unknown_path_is_json_404_with_request_id(client):
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.json["error"]["code"] == "not_found"
    assert len(r.headers["X-Request-Id"]) >= 8


def test_request_id_is_echoed(client):
    r = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["X-Request-Id"] != "bad id with spaces"


def test_wrong_method_is_json_405(client):
    r = client.get("/echo/v1/echo")
    assert r.status_code == 405
    assert r.json["error"]["code"] == "method_not_allowed"


def test_malformed_json_is_400_naming_the_problem(client):
    r = client.post("/echo/v1/echo", data=b'{"a": ', content_type="application/json")
    assert r.status_code == 400
    assert r.json["error"]["code"] == "invalid_json"
    assert "JSON" in r.json["error"]["message"]
    r = client.post("/echo/v1/echo", data=b"[1, 2]", content_type="application/json")
    assert r.status_code == 400 and "object" in r.json["error"]["message"]


def test_body_over_limit_is_413_before_the_function_reads_it(client):
    r = client.post("/echo/v1/echo", data=b"x" * (64 * 1024 + 1), content_type="application/json")
    assert r.status_code == 413
    assert r.json["error"]["details"]["limit"] == 64 * 1024


def test_chunked_body_over_limit_is_413(gateway):
    def body():
        for _ in range(100):
            yield b"x" * 1024

    r = requests.post(f"{gateway.url}/echo/v1/echo", data=body(), headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 413


def test_required_auth_refuses_missing_and_bad_tokens(client, clients, settings, make_user):
    assert client.get("/files/v1/root").status_code == 401
    r = client.get("/files/v1/root", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_token"
    r = client.get("/files/v1/root", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401
    token, _ = issue_access_token(clients.keys, settings, sub="u1", aud="some-other-app")
    r = client.get("/echo/v1/ping", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "audience" in r.json["error"]["message"]


def test_identity_reaches_the_function(client, make_user):
    user = make_user()
    r = client.get("/echo/v1/ping", headers=user.headers)
    assert r.status_code == 200 and r.json["user_id"] == user.id
    assert client.get("/echo/v1/ping").json["user_id"] is None


def test_rate_limit_answers_429_with_retry_after(env, live_server_factory):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    env["PCLOUD_RATE_LIMIT_PER_MINUTE"] = "5"
    app = create_gateway(load_settings(env))
    c = Client(app)
    codes = [c.get("/echo/v1/ping").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    r = c.get("/echo/v1/ping")
    assert r.json["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    assert c.get("/healthz").status_code == 200  # health is never limited


def test_cors_only_for_registered_sibling_origins(env):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    env["PCLOUD_SSO_CLIENTS"] = json.dumps([{"client_id": "reader", "client_secret": "s",
                                            "redirect_uris": ["http://127.0.0.1:5999/cb"]}])
    c = Client(create_gateway(load_settings(env)))
    r = c.options("/echo/v1/echo", headers={"Origin": "http://127.0.0.1:5999",
                                            "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5999"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = c.get("/echo/v1/ping", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_metrics_and_openapi(client):
    client.get("/echo/v1/ping")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert b"pcloud_http_requests_total" in r.data
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/healthz" in spec["paths"] and "/echo/v1/ping" in spec["paths"]


@pytest.mark.parametrize("dependency", ["mongo", "redis", "amqp"])
def test_readyz_names_the_dependency_that_is_down(env, dependency):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    dead = free_port()
    env.update({"mongo": {"PCLOUD_MONGO_URL": f"mongodb://127.0.0.1:{dead}/x?directConnection=true"},
                "redis": {"PCLOUD_REDIS_URL": f"redis://127.0.0.1:{dead}/0"},
                "amqp": {"PCLOUD_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{dead}/%2F"}}[dependency])
    c = Client(create_gateway(load_settings(env)))
    started = time.monotonic()
    r = c.get("/readyz")
    assert time.monotonic() - started < 10
    assert r.status_code == 503
    assert r.json["status"] == "unavailable"
    assert r.json["checks"][dependency] != "ok"
    assert all(v == "ok" for k, v in r.json["checks"].items() if k != dependency)


def test_a_call_needing_a_down_database_gets_json_503(env, make_user):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    user = make_user()
    env["PCLOUD_MONGO_URL"] = f"mongodb://127.0.0.1:{free_port()}/x?directConnection=true"
    c = Client(create_gateway(load_settings(env)))
    started = time.monotonic()
    r = c.get("/files/v1/root", headers=user.headers)
    assert time.monotonic() - started < 30  # bounded by the client's timeouts, never a hang
    assert r.status_code == 503
    assert r.json["error"]["code"] == "unavailable"
    assert r.json["error"]["details"]["dependency"] == "mongo"


def test_proxy_mode_reaches_a_function_in_a_second_process(env, settings, make_user):
    """The echo function runs under gunicorn in its own process; the gateway streams to it."""
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(sys.prefix, "bin", "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1",
         'gateway.function_server:make("echo")'],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/echo/v1/ping", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        from werkzeug.test import Client

        from gateway.wsgi import create_gateway
        from runtime.settings import load_settings

        env["PCLOUD_FUNCTION_ECHO_URL"] = f"http://127.0.0.1:{port}"
        c = Client(create_gateway(load_settings(env)))
        user = make_user()
        r = c.get("/echo/v1/ping", headers={**user.headers, "X-Request-Id": "proxy-1"})
        assert r.status_code == 200
        assert r.json == {"pong": True, "user_id": user.id, "request_id": "proxy-1", "client_id": "pcloud",
                          "scopes": list(USER_SCOPES), "app": None, "execution_id": None, "depth": 0}
        big = {"blob": "y" * 50000}
        r = c.post("/echo/v1/echo", data=json.dumps(big), content_type="application/json")
        assert r.status_code == 200 and r.json == big
        # Calling the function directly with a forged identity header gets no identity.
        r = requests.get(f"http://127.0.0.1:{port}/echo/v1/ping",
                         headers={"X-PCloud-Identity": "eyJ1c2VyX2lkIjogImV2aWwifQ.00"}, timeout=5)
        assert r.json()["user_id"] is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_proxy_to_a_dead_function_is_json_503(env):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    env["PCLOUD_FUNCTION_ECHO_URL"] = f"http://127.0.0.1:{free_port()}"
    r = Client(create_gateway(load_settings(env))).get("/echo/v1/ping")
    assert r.status_code == 503 and r.json["error"]["code"] == "unavailable"


def test_every_html_response_is_hardened_and_hsts_on_https(env):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    env["PCLOUD_PUBLIC_URL"] = "https://cloud.example"
    c = Client(create_gateway(load_settings(env)))
    for path in ("/auth/login", "/auth/logout", "/portal/signin"):
        r = c.get(path, headers={"Accept": "text/html"})
        assert r.status_code == 200 and r.mimetype == "text/html", path
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Strict-Transport-Security"].startswith("max-age="), path
    api = c.get("/healthz")
    assert api.headers["X-Content-Type-Options"] == "nosniff" and "Strict-Transport-Security" in api.headers
