"""Shared fixtures: every test gets real services, isolated by its own database, key prefix and vhost."""

from __future__ import annotations

import os
import pkgutil
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

import tests.fixtures
from runtime.clients import Clients
from runtime.identity import ADMIN_SCOPE, USER_SCOPES
from runtime.ids import new_id, utcnow
from runtime.settings import load_settings
from runtime.tokens import issue_access_token

pytest_plugins = [f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules(tests.fixtures.__path__)]

MONGO_BASE = os.environ.get("PCLOUD_TEST_MONGO_URL", "mongodb://127.0.0.1:27017/")
AMQP_HOST = os.environ.get("PCLOUD_TEST_AMQP_HOST", "guest:guest@127.0.0.1:5672")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def make_vhost(name: str) -> str:
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return f"amqp://{AMQP_HOST}/{name}"


def drop_vhost(name: str) -> None:
    try:
        _rabbitmqctl("delete_vhost", name)
    except (subprocess.SubprocessError, OSError):
        pass


@pytest.fixture(scope="session")
def worker_id_str(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(scope="session")
def worker_vhost(worker_id_str):
    """One vhost per xdist worker; tests that need a pristine broker use `fresh_vhost`."""
    name = f"pcloud-test-{worker_id_str}-{uuid.uuid4().hex[:6]}"
    url = make_vhost(name)
    yield url
    drop_vhost(name)


@pytest.fixture
def fresh_vhost():
    name = f"pcloud-test-{uuid.uuid4().hex[:10]}"
    url = make_vhost(name)
    yield url
    drop_vhost(name)


@pytest.fixture(scope="session")
def worker_data_dir(tmp_path_factory):
    """Signing keys and secrets are generated once per worker (RSA generation is slow)."""
    return tmp_path_factory.mktemp("pcloud-data")


@pytest.fixture
def env(worker_data_dir, worker_vhost, tmp_path):
    """The environment a PCloud process would get, isolated for this test. Tests may add to it."""
    port = free_port()
    db = f"pcloud_t_{uuid.uuid4().hex[:12]}"
    blobs = tmp_path / "blobs"
    return {
        "PCLOUD_BIND": f"127.0.0.1:{port}",
        "PCLOUD_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PCLOUD_DATA_DIR": str(worker_data_dir),
        "PCLOUD_MONGO_URL": f"{MONGO_BASE}{db}?directConnection=true",
        "PCLOUD_REDIS_URL": "redis://127.0.0.1:6379/0",
        "PCLOUD_REDIS_PREFIX": f"t{uuid.uuid4().hex[:10]}:",
        "PCLOUD_AMQP_URL": worker_vhost,
        "PCLOUD_STORE_URL": f"file://{blobs}",
        "PCLOUD_RATE_LIMIT_PER_MINUTE": "100000",
        "PCLOUD_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def settings(env):
    return load_settings(env)


@pytest.fixture
def clients(settings):
    """Fresh clients for this test's settings (not the process-wide cache, so teardown can drop state)."""
    from runtime.mongo import database_name

    c = Clients(settings)
    yield c
    try:
        c.mongo.drop_database(database_name(settings.mongo_url))
        for key in c.redis.scan_iter(f"{settings.redis_prefix}*", count=1000):
            c.redis.delete(key)
    finally:
        c.close()


class LiveServer:
    """A WSGI app served over real HTTP on loopback in a thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server_factory():
    servers = []

    def start(app, port: int = 0) -> LiveServer:
        server = LiveServer(app, port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gateway_app(settings, clients):
    from gateway.wsgi import create_gateway
    from runtime.clients import forget

    yield create_gateway(settings)
    forget(settings)


@pytest.fixture
def gateway(gateway_app, settings, live_server_factory):
    """The real gateway over HTTP at settings.public_url (`gateway.url`)."""
    port = int(settings.bind.rsplit(":", 1)[1])
    server = live_server_factory(gateway_app, port=port)
    assert server.url == settings.public_url
    return server


@pytest.fixture
def client(gateway_app):
    """werkzeug test client straight into the gateway WSGI app (no sockets)."""
    from werkzeug.test import Client

    return Client(gateway_app)


@dataclass
class TestUser:
    id: str
    email: str
    name: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_user(clients, settings):
    """Create a user in the database and a first-party access token for it."""

    def make(email: str | None = None, name: str = "Test User", admin: bool = False) -> TestUser:
        user_id = new_id()
        email = email or f"{user_id}@example.test"
        clients.db.users.insert_one({"_id": user_id, "email": email, "name": name, "identities": [],
                                     "seq": 0, "journal_floor": 0, "created_at": utcnow(),
                                     "role": "admin" if admin else "member"})
        scopes = [*USER_SCOPES, ADMIN_SCOPE] if admin else USER_SCOPES
        token, _ = issue_access_token(clients.keys, settings, sub=user_id, aud="pcloud", scopes=scopes)
        return TestUser(user_id, email, name, token)

    return make
