"""MongoDB access: one client per process, timeouts on every call, transactions with retry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, ServerSelectionTimeoutError

from runtime.errors import Unavailable

log = logging.getLogger(__name__)
_index_builders: list[Callable] = []


def connect(url: str, timeout_ms: int = 5000) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 6, 30000),
        retryWrites=True,
    )


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    return name or "pcloud"


def register_indexes(builder: Callable) -> Callable:
    """Modules declare their indexes next to their queries; start-up (and tests) run them all."""
    if builder not in _index_builders:
        _index_builders.append(builder)
    return builder


def ensure_indexes(db) -> None:
    for builder in list(_index_builders):
        builder(db)


def transaction(client: pymongo.MongoClient, fn: Callable, attempts: int = 8):
    """Run fn(session) in a transaction; retry write conflicts and transient errors like the driver's helper."""
    last = None
    for _ in range(attempts):
        with client.start_session() as session:
            try:
                return session.with_transaction(fn)
            except OperationFailure as exc:
                if exc.has_error_label("TransientTransactionError") or exc.code in (112, 251):
                    last = exc
                    continue
                raise
            except (ConnectionFailure, ServerSelectionTimeoutError) as exc:
                raise Unavailable("the database did not answer", details={"dependency": "mongo"}) from exc
    raise Unavailable("the database kept reporting write conflicts; try again",
                      details={"dependency": "mongo", "reason": str(last)})


def ping(client: pymongo.MongoClient) -> None:
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise Unavailable(f"mongo: {exc.__class__.__name__}", details={"dependency": "mongo"}) from exc
