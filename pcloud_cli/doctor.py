"""`pcloud doctor`: every dependency and setting checked, each with what is wrong and what to do.

Nothing here creates state: the key store is looked at, not generated (a KeyStore would make new keys and
silently invalidate every token a restored instance issued).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pymongo.errors import PyMongoError

from runtime import amqp, mongo
from runtime import redis as redis_client
from runtime.settings import Settings, SettingsError, load_settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # ok but worth a look

    @property
    def status(self) -> str:
        return "ok" if self.ok and not self.warning else ("warn" if self.ok else "FAIL")


def _run(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn() or "")
    except Warn as exc:
        return Check(name, True, str(exc), warning=True)
    except Exception as exc:  # noqa: BLE001 - a doctor reports every failure, whatever its type
        return Check(name, False, f"{exc.__class__.__name__}: {exc}")


class Warn(Exception):
    """A check that passed with a remark."""


def check_key_store(data_dir: Path) -> str:
    path = data_dir / "keys" / "signing-keys.json"
    if not path.is_file():
        raise RuntimeError(f"no key store at {path}: a first start generates one, but if this instance has issued "
                           "tokens or holds apps' data, restore the key store from a backup (pcloud restore) "
                           "instead, or every session and device must sign in again")
    keys = json.loads(path.read_text()).get("keys") or []
    if not keys or not all("d" in k and k.get("kid") for k in keys):
        raise RuntimeError(f"{path} holds no private signing key")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise Warn(f"{len(keys)} signing key(s), but {path} is readable by others (mode {mode:o}; chmod 600)")
    secrets = data_dir / "secrets"
    if not secrets.is_dir():
        raise Warn(f"{len(keys)} signing key(s); no {secrets} yet (made on first start; blob URLs and the proxy "
                   "identity need it, restore it with the keys)")
    return f"{len(keys)} signing key(s), current {keys[0]['kid']}"


def check_data_dir(data_dir: Path) -> str:
    if not data_dir.is_dir():
        raise RuntimeError(f"PCLOUD_DATA_DIR {data_dir} does not exist")
    if not os.access(data_dir, os.W_OK):
        raise RuntimeError(f"PCLOUD_DATA_DIR {data_dir} is not writable by this user")
    return str(data_dir)


def check_mongo(settings: Settings, timeout_ms: int) -> str:
    client = mongo.connect(settings.mongo_url, timeout_ms=timeout_ms)
    try:
        try:
            hello = client.admin.command("hello")
        except PyMongoError as exc:
            raise RuntimeError(f"no answer from {settings.mongo_url.split('@')[-1]} "
                               f"(check PCLOUD_MONGO_URL): {str(exc).split(', Timeout')[0][:200]}") from None
        if not hello.get("setName") and not hello.get("msg") == "isdbgrid" and "secantus" not in str(hello).lower():
            raise Warn("answers, but is not a replica set: transactions and change streams need one")
        return f"{mongo.database_name(settings.mongo_url)} on {', '.join(f'{h}:{p}' for h, p in client.nodes) or '?'}"
    finally:
        client.close()


def check_redis(settings: Settings) -> str:
    client = redis_client.connect(settings.redis_url)
    try:
        client.ping()
        return settings.redis_url.split("@")[-1]
    finally:
        client.close()


def check_amqp(settings: Settings, timeout: float) -> str:
    publisher = amqp.AmqpPublisher(settings.amqp_url, timeout=timeout, declare=False)
    try:
        publisher.ping()
    finally:
        publisher.close_quietly()
    if "guest:guest@" in settings.amqp_url and not settings.amqp_url.split("@", 1)[1].startswith(("127.", "localhost")):
        raise Warn("reachable, but with the guest account over the network: create a user of your own")
    return settings.amqp_url.split("@")[-1]


def check_store(settings: Settings) -> str:
    from runtime.store import make_store

    secret_file = Path(settings.data_dir) / "secrets" / "blob-urls"
    secret = bytes.fromhex(secret_file.read_text().strip()) if secret_file.is_file() else b"\0" * 32
    store = make_store(settings, secret, settings.http_timeout_seconds, ensure=False)
    store.check()
    return settings.store_url


def check_search(settings: Settings, timeout: float) -> str:
    if not settings.search_url:
        return f"embedded index under {Path(settings.data_dir) / 'search'} (one box only)"
    import requests

    try:
        answer = requests.get(f"{settings.search_url}/health", timeout=timeout)
    except requests.RequestException as exc:
        raise RuntimeError(f"Meilisearch at PCLOUD_SEARCH_URL {settings.search_url} does not answer: "
                           f"{exc.__class__.__name__}") from None
    if answer.status_code != 200:
        raise RuntimeError(f"Meilisearch at {settings.search_url} answers {answer.status_code} to /health")
    return settings.search_url


def check_settings_sense(settings: Settings) -> str:
    remarks = []
    if settings.demo_signin:
        remarks.append("PCLOUD_DEMO_SIGNIN is on: anyone can sign in as anyone; never in production")
    if not settings.is_https and not settings.public_url.startswith(("http://127.", "http://localhost")):
        remarks.append(f"PCLOUD_PUBLIC_URL {settings.public_url} is not https")
    if not (settings.google_enabled or settings.facebook_enabled or settings.demo_signin):
        remarks.append("no sign-in provider configured (PCLOUD_GOOGLE_CLIENT_ID/SECRET or Facebook)")
    if remarks:
        raise Warn("; ".join(remarks))
    return f"public URL {settings.public_url}"


def run_checks(environ=None, timeout: float = 3.0) -> list[Check]:
    """Every check, in order; a settings error stops the rest (they need the settings)."""
    try:
        settings = load_settings(environ)
    except SettingsError as exc:
        return [Check("settings", False, str(exc))]
    data_dir = Path(settings.data_dir)
    return [
        Check("settings", True, "every PCLOUD_* variable parses"),
        _run("sanity", lambda: check_settings_sense(settings)),
        _run("data dir", lambda: check_data_dir(data_dir)),
        _run("key store", lambda: check_key_store(data_dir)),
        _run("mongo", lambda: check_mongo(settings, int(timeout * 1000))),
        _run("redis", lambda: check_redis(settings)),
        _run("amqp", lambda: check_amqp(settings, timeout)),
        _run("store", lambda: check_store(settings)),
        _run("search", lambda: check_search(settings, timeout)),
    ]
