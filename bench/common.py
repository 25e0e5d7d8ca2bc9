"""Helpers shared by benchmarks: an isolated environment on the real local services, and server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(**extra) -> dict:
    """A PCloud environment with its own database, Redis prefix and data dir, on the local services."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="pcloud-bench-")
    env = {
        "PCLOUD_BIND": f"127.0.0.1:{port}",
        "PCLOUD_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PCLOUD_DATA_DIR": data,
        "PCLOUD_MONGO_URL": f"mongodb://127.0.0.1:27017/pcloud_bench_{uuid.uuid4().hex[:8]}?directConnection=true",
        "PCLOUD_REDIS_PREFIX": f"bench{uuid.uuid4().hex[:6]}:",
        "PCLOUD_STORE_URL": f"file://{data}/blobs",
        "PCLOUD_RATE_LIMIT_PER_MINUTE": "100000000",
        "PCLOUD_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def start_process(args: list[str], env: dict, ready_url: str | None = None, timeout: float = 90.0):
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if ready_url:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(ready_url, timeout=10)
                return proc
            except requests.RequestException:
                time.sleep(0.1)
        proc.kill()
        raise SystemExit(f"{args} did not answer at {ready_url}")
    return proc


def python() -> str:
    return sys.executable


def gunicorn() -> str:
    return os.path.join(os.path.dirname(sys.executable), "gunicorn")


def new_bench_user(db, name: str = "Bench") -> str:
    """A new member account (through the users owner module, as sign-in makes them); its id."""
    from runtime import users
    from runtime.ids import new_id

    user = users.create(db, f"{new_id()}@bench.test", name, [])
    if user is None:
        raise SystemExit("could not create a bench account")
    return user["_id"]
