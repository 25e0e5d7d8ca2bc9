"""What every push backend shares: the message and result types, the `PushSender` interface, `LogSender`, and
the start-up check of the configured backend.

Kept apart from push/senders.py (firebase-admin, google-auth, httpx: ~9 MiB of imports) so the relay, which
only records and enqueues, runs without them; the worker imports the FCM sender when it builds its context.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("push.senders")


class PushConfigError(RuntimeError):
    """The push backend cannot start: bad credentials file, or firebase-admin changed under our one hook."""


@dataclass(frozen=True)
class PushMessage:
    """One message to one phone token; `id` is our delivery id."""

    id: str
    token: str
    kind: str
    data: dict
    notification: tuple[str, str] | None = None  # (title, body)
    collapse_key: str | None = None
    ttl_seconds: int = 3600
    priority: str = "normal"  # Android: "high" | "normal"


@dataclass(frozen=True)
class SendResult:
    """How one message went. status: sent | unregistered | invalid_token | retry | failed."""

    id: str
    status: str
    reason: str | None = None
    retry_after: float | None = None
    provider_id: str | None = None


class PushSender(Protocol):
    name: str

    def send_batch(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        """Send each message; never raise for one message's failure, classify it instead."""


class LogSender:
    """The default without FCM credentials: logs each message so `make run` shows what phones would get."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None):
        self.log = logger or log

    def send_batch(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        results = []
        for m in messages:
            self.log.info("push %s to %s…: data=%s notification=%s collapse_key=%s ttl=%ss priority=%s",
                          m.kind, m.token[:12], json.dumps(m.data, sort_keys=True), m.notification,
                          m.collapse_key, m.ttl_seconds, m.priority)
            results.append(SendResult(m.id, "sent", provider_id=f"log/{m.id}"))
        return results


def check_settings(settings) -> None:
    """Fail at start-up on a PCLOUD_PUSH_BACKEND=fcm without a readable service-account key (the relay's check;
    the worker builds the real sender, which also has firebase-admin check the key)."""
    if settings.push_backend != "fcm":
        return
    if not settings.fcm_credentials:
        raise PushConfigError("PCLOUD_PUSH_BACKEND=fcm needs PCLOUD_FCM_CREDENTIALS")
    try:
        with open(settings.fcm_credentials, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise PushConfigError(
            f"PCLOUD_FCM_CREDENTIALS {settings.fcm_credentials!r} is not a readable JSON file: {exc}") from exc
    missing = [k for k in ("type", "private_key", "client_email", "project_id") if not info.get(k)] \
        if isinstance(info, dict) else ["an object"]
    if missing or info.get("type") != "service_account":
        raise PushConfigError(f"PCLOUD_FCM_CREDENTIALS is not a service-account key (missing: {', '.join(missing)})")
