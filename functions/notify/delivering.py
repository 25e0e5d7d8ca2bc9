"""Sending webhook deliveries (the notifier's outbound half; service.py writes them, this sends them).

`Deliverer` claims due deliveries with a lease, sends each signed POST through the SSRF-safe sender
(netguard.py, signing.py), retries with exponential backoff — or later, when a 429/503 answer's Retry-After asks,
within an hour — gives up after PCLOUD_WEBHOOK_MAX_ATTEMPTS, and disables a webhook after
PCLOUD_WEBHOOK_DISABLE_AFTER failures in a row, or at once on 410 Gone (with a `notify.webhook.disabled` event).
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from pymongo import UpdateOne

from functions.notify import allowlist, deliveries, signing, webhooks
from functions.notify.netguard import (
    RETRY_AFTER_STATUSES,
    AddressPolicy,
    Answer,
    Refused,
    SafeHttpSender,
    SystemResolver,
)
from runtime import events
from runtime.ids import as_utc, utcnow
from runtime.mongo import transaction

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 3600.0


def backoff_seconds(base: float, attempt: int) -> float:
    """Exponential: `base` after the first failed attempt, doubling each time, at most an hour."""
    return min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF_SECONDS)


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """What a Retry-After header asks for, in seconds from `now`: delay-seconds or an HTTP-date (RFC 9110
    §10.2.3; a date already past is 0). None when it is neither."""
    value = (value or "").strip()
    if re.fullmatch(r"[0-9]+", value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": no zone given; HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(base: float, attempt: int, answer: Answer, now: datetime) -> tuple[float, str | None]:
    """Seconds until the next attempt, and what the delivery log says about a Retry-After (None: there was none).

    A 429/503 with Retry-After waits at least that long, but never over MAX_BACKOFF_SECONDS: a longer (or a
    malformed) value is ignored and the normal backoff applies, so one receiver cannot park a delivery for days."""
    delay = backoff_seconds(base, attempt)
    if answer.status not in RETRY_AFTER_STATUSES or answer.retry_after is None:
        return delay, None
    asked = retry_after_seconds(answer.retry_after, now)
    if asked is None:
        return delay, (f"Retry-After {answer.retry_after[:60]!r} is neither seconds nor an HTTP-date: "
                       f"normal backoff, next attempt in {delay:g} s")
    if asked > MAX_BACKOFF_SECONDS:
        return delay, (f"Retry-After asks for {asked:.0f} s, over the {MAX_BACKOFF_SECONDS:.0f} s maximum: "
                       f"normal backoff, next attempt in {delay:g} s")
    if asked <= delay:
        return delay, f"Retry-After {asked:g} s is within the backoff: next attempt in {delay:g} s"
    return asked, f"next attempt in {asked:g} s, as Retry-After asked"


def signing_secrets(hook: dict, now: datetime) -> list[str]:
    found = [hook["secret"]]
    until = as_utc(hook.get("previous_secret_until"))
    if hook.get("previous_secret") and until and until > now:
        found.append(hook["previous_secret"])
    return found


def sender_for(settings, resolver=None, db=None) -> SafeHttpSender:
    """The SSRF-safe sender; with `db`, the admins' allowed networks (allowlist.py) count besides the setting's."""
    extra = allowlist.Cached(db) if db is not None else None
    return SafeHttpSender(AddressPolicy.from_settings(settings, extra), resolver or SystemResolver(),
                          timeout=settings.webhook_timeout_seconds)


def send_signed(sender: SafeHttpSender, hook: dict, delivery_id: str, event_type: str, body: str,
                now: datetime) -> Answer:
    """One signed POST (no retry here); a refused URL is an attempt that failed before sending anything."""
    raw = body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": "PCloud-Webhooks/1",
               signing.HEADER: signing.header_value(signing_secrets(hook, now), raw, int(now.timestamp())),
               "PCloud-Event": event_type, "PCloud-Delivery": delivery_id, "PCloud-Webhook": hook["_id"]}
    try:
        return sender.post(hook["url"], raw, headers)
    except Refused as exc:
        return Answer(None, "", 0, error=f"{exc.code}: {exc}")


class Deliverer:
    """Sends due webhook deliveries with a small thread pool; any number of these may run (leases)."""

    def __init__(self, db, mongo, settings, sender: SafeHttpSender | None = None, clock=utcnow, threads: int = 8,
                 lease_seconds: float | None = None):
        self.db = db
        self.mongo = mongo
        self.settings = settings
        self.sender = sender or sender_for(settings, db=db)
        self.clock = clock
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        # a lease outlives one attempt (timeout) by a margin: a live deliverer never loses its record
        self.lease_seconds = lease_seconds or settings.webhook_timeout_seconds * 3 + 10
        self.wake = threading.Event()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.sender.close()

    def run_once(self, limit: int = 64) -> int:
        """Claim due deliveries and send them; returns how many were attempted."""
        docs = deliveries.claim_due(self.db, limit, self.lease_seconds, self.clock())
        if not docs:
            return 0
        ids = list({d["webhook_id"] for d in docs if d.get("webhook_id")})
        hooks = {h["_id"]: h for h in self.db.webhooks.find({"_id": {"$in": ids}})} if ids else {}
        outcomes = list(self.pool.map(lambda d: (d, self._attempt(d, hooks.get(d.get("webhook_id")))), docs))
        self._record(outcomes, hooks)
        return len(docs)

    def run(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
                due = as_utc(deliveries.next_due_at(self.db))
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the loop; it retries
                log.warning("webhook deliveries: %s", exc)
                stop.wait(idle_seconds)
                continue
            wait = idle_seconds
            if due is not None:
                wait = max(0.0, min(wait, (due - self.clock()).total_seconds()))
            if wait > 0:
                self.wake.wait(wait)
            self.wake.clear()

    def send(self, hook: dict, delivery_id: str, event_type: str, body: str) -> Answer:
        return send_signed(self.sender, hook, delivery_id, event_type, body, self.clock())

    def _attempt(self, doc: dict, hook: dict | None) -> tuple[str, Answer | None]:
        if doc.get("channel") != "webhook":
            return "skip", None
        if hook is None:
            return "gone", None
        if hook.get("state") != "enabled":
            return "disabled", None
        return "sent", self.send(hook, doc["_id"], doc["event_type"], doc["body"])

    def _record(self, outcomes, hooks: dict) -> None:
        now = self.clock()
        writes, ok_hooks, failed, gone = [], {}, [], []
        for doc, (kind, answer) in outcomes:
            unset = {"claim": "", "lease_until": ""}
            query = {"_id": doc["_id"], "claim": doc.get("claim")}
            if kind in ("skip", "gone", "disabled"):
                error = {"skip": None, "gone": "webhook deleted", "disabled": "webhook disabled"}[kind]
                state = "delivered" if kind == "skip" else "dead"
                writes.append(UpdateOne(query, {"$set": {"state": state, "next_attempt_at": None, "updated_at": now,
                                                         "last.error": error}, "$unset": unset}))
                continue
            attempt = {"at": now, "status": answer.status, "error": answer.error, "duration_ms": answer.duration_ms,
                       "answer": answer.body[:512]}
            if answer.retry_after is not None:
                attempt["retry_after"] = answer.retry_after
            fields = {"last": attempt, "updated_at": now}
            if answer.ok:
                fields.update(state="delivered", delivered_at=now, next_attempt_at=None)
                ok_hooks[doc["webhook_id"]] = answer.status
            elif answer.status == 410:  # the receiver says the endpoint is gone for good: no retry, no more calls
                attempt["note"] = "410 Gone: not retried, the webhook is disabled"
                fields.update(state="dead", next_attempt_at=None)
                gone.append((doc, answer))
            elif doc["attempts"] >= self.settings.webhook_max_attempts:
                if answer.retry_after is not None:
                    attempt["note"] = "no attempt left: Retry-After not used"
                fields.update(state="dead", next_attempt_at=None)
                failed.append((doc, answer))
            else:
                delay, note = retry_delay(self.settings.webhook_backoff_seconds, doc["attempts"], answer, now)
                if note:
                    attempt["note"] = note
                fields.update(state="failed", next_attempt_at=now + timedelta(seconds=delay))
                failed.append((doc, answer))
            writes.append(UpdateOne(query, {"$set": fields, "$unset": unset,
                                            "$push": {"history": {"$each": [attempt],
                                                                  "$slice": -deliveries.HISTORY_KEEP}}}))
        if writes:
            self.db.notify_deliveries.bulk_write(writes, ordered=False)
        for webhook_id, status in ok_hooks.items():
            webhooks.record_success(self.db, webhook_id, status, now)
        for doc, answer in failed:
            hook = webhooks.record_failure(self.db, doc["webhook_id"], answer.status, answer.error or "failed", now)
            if hook is not None and hook["consecutive_failures"] >= self.settings.webhook_disable_after:
                self.disable(hook, f"{hook['consecutive_failures']} failed attempts in a row "
                                   f"(last: {answer.error or answer.status})")
        for doc, answer in gone:
            hook = webhooks.record_failure(self.db, doc["webhook_id"], answer.status, answer.error or "gone", now)
            if hook is not None:
                self.disable(hook, "the receiver answered 410 Gone")

    def disable(self, hook: dict, reason: str) -> bool:
        """Disable once, tell the owner (an event in the same transaction), end its open deliveries."""
        now = self.clock()

        def work(session):
            done = webhooks.disable(self.db, hook["_id"], reason, now, session=session)
            if done is not None:
                events.append(self.db, owner=done["owner"], type="notify.webhook.disabled", subject=done["_id"],
                              data={"webhook": {"id": done["_id"], "url": done["url"], "reason": reason,
                                                "consecutive_failures": done["consecutive_failures"]}},
                              session=session)
            return done is not None

        if not transaction(self.mongo, work):
            return False
        deliveries.kill_open(self.db, hook["_id"], "webhook disabled", now)
        log.warning("webhook %s of %s disabled: %s", hook["_id"], hook["owner"], reason)
        return True
