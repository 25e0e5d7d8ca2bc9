"""One set of clients per process: built lazily on first use, shared by every in-process function."""

from __future__ import annotations

import threading
from functools import cached_property

from runtime import amqp, mongo
from runtime import redis as redis_client
from runtime.keys import KeyStore
from runtime.settings import Settings

_lock = threading.Lock()
_by_settings: dict[int, Clients] = {}
_store_hooks: list = []


class Clients:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._build_lock = threading.RLock()

    @cached_property
    def keys(self) -> KeyStore:
        return KeyStore(self.settings.data_dir)

    @cached_property
    def mongo(self):
        return mongo.connect(self.settings.mongo_url)

    @cached_property
    def db(self):
        db = self.mongo[mongo.database_name(self.settings.mongo_url)]
        return db

    @cached_property
    def redis(self):
        return redis_client.connect(self.settings.redis_url)

    @cached_property
    def redis_keys(self) -> redis_client.RedisKeys:
        return redis_client.RedisKeys(self.settings.redis_prefix)

    @cached_property
    def live(self):
        """This process's publisher of live notices (runtime/live.py): its own short-timeout Redis client, so a
        Redis that is away delays a state change by at most half a second once, then not at all for a while."""
        from runtime import live

        return live.Publisher(redis_client.connect(self.settings.redis_url, timeout=0.5), self.redis_keys)

    @cached_property
    def amqp(self) -> amqp.AmqpPublisher:
        return amqp.AmqpPublisher(self.settings.amqp_url, timeout=min(self.settings.http_timeout_seconds, 5.0))

    @cached_property
    def store(self):
        from runtime.store import make_stores

        store = make_stores(self.settings, self.keys.secret("blob-urls"), self.settings.http_timeout_seconds)
        for hook in list(_store_hooks):
            hook(self, store)
        return store

    def on_store(self, hook) -> None:
        """Run `hook(clients, store)` on this process's store, now if it is built, else when it is: functions wire
        their own callbacks into it (runtime imports no function)."""
        if hook not in _store_hooks:
            _store_hooks.append(hook)
        if "store" in self.__dict__:
            hook(self, self.store)

    def queue(self, name: str):
        """An rq Queue on our Redis, named with the settings' prefix, with the JSON serializer (runtime/jobs.py)."""
        from runtime import jobs

        return jobs.queue(self.redis, self.settings.queue_name(name))

    def ensure_indexes(self) -> None:
        mongo.ensure_indexes(self.db)

    def close(self) -> None:
        if "mongo" in self.__dict__:
            self.mongo.close()
        if "amqp" in self.__dict__:
            self.amqp.close_quietly()
        if "redis" in self.__dict__:
            self.redis.close()


def clients_for(settings: Settings) -> Clients:
    """The process-wide Clients for these settings (one per distinct Settings object value)."""
    key = hash(_settings_key(settings))
    with _lock:
        found = _by_settings.get(key)
        if found is None:
            found = _by_settings[key] = Clients(settings)
        return found


_process_settings: Settings | None = None


def process_clients() -> Clients:
    """The clients of this process's own environment, settings read once: what rq jobs and CLIs run on."""
    global _process_settings
    with _lock:
        if _process_settings is None:
            from runtime.settings import load_settings

            _process_settings = load_settings()
    return clients_for(_process_settings)


def forget(settings: Settings) -> None:
    """Close and drop the process-wide Clients for these settings (tests, or a process shutting down)."""
    global _process_settings
    with _lock:
        found = _by_settings.pop(hash(_settings_key(settings)), None)
        _process_settings = None
    if found is not None:
        found.close()


def _settings_key(settings: Settings):
    return (settings.mongo_url, settings.redis_url, settings.redis_prefix, settings.amqp_url, settings.store_url,
            settings.stores, str(settings.data_dir), settings.public_url)
