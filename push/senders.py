"""Push senders: `FCMSender` (firebase-admin) and `make_sender`; the `PushSender` interface, the message types
and `LogSender` (no credentials) live in push/messages.py and are importable from here too.

A sender only talks to the provider and classifies each answer (sent / token gone / retry later / failed);
the policy (pruning tokens, backoff, delivery records) lives in push/tasks.py.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import firebase_admin
import requests.adapters
from firebase_admin import credentials as fb_credentials
from firebase_admin import exceptions as fb_exceptions
from firebase_admin import messaging
from urllib3.util.retry import Retry

from push.messages import LogSender, PushConfigError, PushMessage, PushSender, SendResult, check_settings

__all__ = ["FCMSender", "LogSender", "PushConfigError", "PushMessage", "PushSender", "SendResult", "check_settings",
           "make_sender"]

log = logging.getLogger(__name__)

FCM_BATCH_LIMIT = 500  # send_each refuses more
DEFAULT_FCM_ENDPOINT = "https://fcm.googleapis.com"


# ---------------------------------------------------------------------------------------------- FCM


def to_fcm_message(m: PushMessage) -> messaging.Message:
    """Our message as a firebase-admin Message: data, Android collapse key/TTL/priority, APNs headers.

    The target is `token`: phones register FCM registration tokens, which is what FCM HTTP v1
    `message.token` takes. firebase-admin 7.7 deprecates the `token=` keyword in favour of `fid=`
    (Firebase installation ids, a different identifier our clients do not send), so we set the documented
    `token` attribute after construction: same wire format, and no DeprecationWarning (thread-safe, unlike
    filtering warnings). If a future release drops `token`, encoding raises ValueError loudly.
    """
    alert = m.notification is not None
    apns_headers = {
        "apns-priority": "10" if alert else "5",  # background pushes must be 5
        "apns-push-type": "alert" if alert else "background",
        "apns-expiration": str(int(time.time()) + m.ttl_seconds),
    }
    if m.collapse_key:
        apns_headers["apns-collapse-id"] = m.collapse_key[:64]
    message = messaging.Message(
        data={str(k): str(v) for k, v in m.data.items()},
        notification=messaging.Notification(title=m.notification[0], body=m.notification[1]) if alert else None,
        android=messaging.AndroidConfig(collapse_key=m.collapse_key, priority=m.priority,
                                        ttl=timedelta(seconds=m.ttl_seconds)),
        apns=messaging.APNSConfig(
            headers=apns_headers,
            payload=messaging.APNSPayload(aps=messaging.Aps(content_available=None if alert else True)),
        ),
    )
    message.token = m.token
    return message


def _retry_after_seconds(exc: fb_exceptions.FirebaseError) -> float | None:
    response = getattr(exc, "http_response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _is_bad_token(exc: fb_exceptions.InvalidArgumentError) -> bool:
    """INVALID_ARGUMENT covers any bad field; only a complaint about the token removes the token."""
    text = str(exc).lower()
    if "registration token" in text:
        return True
    response = getattr(exc, "http_response", None)
    try:
        details = response.json().get("error", {}).get("details", []) if response is not None else []
    except ValueError:
        return False
    for detail in details:
        for violation in detail.get("fieldViolations", []) or []:
            if violation.get("field") in ("message.token", "message.fid"):
                return True
    return False


def classify(message_id: str, exc: fb_exceptions.FirebaseError) -> SendResult:
    """Map a firebase-admin error to what we do about it. Transient errors never remove a token."""
    if isinstance(exc, messaging.UnregisteredError):
        return SendResult(message_id, "unregistered", "UNREGISTERED")
    if isinstance(exc, fb_exceptions.InvalidArgumentError):
        if _is_bad_token(exc):
            return SendResult(message_id, "invalid_token", "INVALID_ARGUMENT: invalid registration token")
        return SendResult(message_id, "failed", f"INVALID_ARGUMENT: {exc}"[:300])
    if isinstance(exc, (fb_exceptions.ResourceExhaustedError, fb_exceptions.UnavailableError,
                        fb_exceptions.InternalError, fb_exceptions.DeadlineExceededError,
                        fb_exceptions.UnknownError, fb_exceptions.AbortedError)):
        code = "QUOTA_EXCEEDED" if isinstance(exc, messaging.QuotaExceededError) else exc.code
        return SendResult(message_id, "retry", f"{code}: {exc}"[:300], retry_after=_retry_after_seconds(exc))
    code = getattr(exc, "code", exc.__class__.__name__)
    if isinstance(exc, messaging.SenderIdMismatchError):
        code = "SENDER_ID_MISMATCH"
    elif isinstance(exc, messaging.ThirdPartyAuthError):
        code = "THIRD_PARTY_AUTH_ERROR"
    return SendResult(message_id, "failed", f"{code}: {exc}"[:300])


_apps: dict[str, firebase_admin.App] = {}
_apps_lock = threading.Lock()


def firebase_app(credentials_path: str, endpoint: str = DEFAULT_FCM_ENDPOINT, token_uri: str | None = None,
                 timeout: float = 10.0, concurrency: int = 64) -> firebase_admin.App:
    """Our own named Firebase app, built once per process per configuration (never the default app)."""
    try:
        with open(credentials_path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise PushConfigError(
            f"PCLOUD_FCM_CREDENTIALS {credentials_path!r} is not a readable JSON file: {exc}") from exc
    if token_uri:
        info["token_uri"] = token_uri
    fingerprint = hashlib.sha256(
        json.dumps([info.get("private_key_id"), info.get("client_email"), info.get("token_uri"),
                    endpoint, timeout, concurrency]).encode()
    ).hexdigest()[:16]
    name = f"pcloud-push-{fingerprint}"
    with _apps_lock:
        app = _apps.get(name)
        if app is None:
            try:
                cred = fb_credentials.Certificate(info)
            except (ValueError, KeyError) as exc:
                raise PushConfigError(f"PCLOUD_FCM_CREDENTIALS is not a service-account key: {exc}") from exc
            app = firebase_admin.initialize_app(cred, {"projectId": info.get("project_id"), "httpTimeout": timeout},
                                                name=name)
            point_messaging_at(app, endpoint, concurrency)
            _apps[name] = app
        return app


def point_messaging_at(app: firebase_admin.App, endpoint: str, concurrency: int = 64) -> None:
    """THE one hook into firebase-admin internals (it has no public endpoint or retry option).

    - `_MessagingService._fcm_url` is where send/send_each POST; we point it at PCLOUD_FCM_ENDPOINT.
    - its `_client.session` mounts a urllib3 Retry adapter that retries 500/503 and sleeps through
      `Retry-After` on 429/503 inside the call (minutes, blocking the worker); we mount an adapter without
      retries (our queue retries with backoff) and with a bounded keep-alive pool.
    If a firebase-admin upgrade moves any of this, start-up fails here, and tests/unit/test_push_senders.py
    fails loudly, instead of pushes silently going to Google or blocking.
    """
    service = messaging._get_messaging_service(app)  # noqa: SLF001 - the documented hook point
    expected = messaging._MessagingService.FCM_URL.format(app.project_id)  # noqa: SLF001
    client = getattr(service, "_client", None)
    session = getattr(client, "session", None)
    if getattr(service, "_fcm_url", None) != expected or not isinstance(session, requests.Session):
        raise PushConfigError(
            f"firebase-admin {firebase_admin.__version__} no longer keeps its FCM URL in "
            "_MessagingService._fcm_url / its session in _client.session; update push.senders.point_messaging_at"
        )
    service._fcm_url = f"{endpoint.rstrip('/')}/v1/projects/{app.project_id}/messages:send"
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=concurrency, pool_block=True,
        max_retries=Retry(total=0, connect=0, read=0, status=0, redirect=0, raise_on_status=False,
                          respect_retry_after_header=False),
    )
    for prefix in {endpoint.rstrip("/") + "/", DEFAULT_FCM_ENDPOINT + "/"}:
        session.mount(prefix, adapter)
    # requests re-reads proxy/CA variables from the environment on every request (~0.3 ms, a third of a
    # send's CPU); read them once, here at start-up, like every other setting
    found = session.merge_environment_settings(service._fcm_url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(found.get("proxies") or {})
    session.verify = found.get("verify", True)
    if endpoint.rstrip("/") != DEFAULT_FCM_ENDPOINT:
        _skip_regional_access_boundary_lookup(app.credential.get_credential())


def _skip_regional_access_boundary_lookup(credential) -> None:
    """google-auth ≥ 2.4x looks up a "regional access boundary" at iamcredentials.googleapis.com after each
    token refresh (a background thread). It only concerns Google's own endpoints, so when FCM is elsewhere
    (a stand-in, a private gateway) we park the lookup in its cooldown instead of calling Google."""
    manager = getattr(credential, "_rab_manager", None)
    data = getattr(manager, "_data", None)
    if data is None or not hasattr(data, "_replace"):
        raise PushConfigError("google-auth changed its regional access boundary manager; "
                              "update push.senders._skip_regional_access_boundary_lookup")
    manager._data = data._replace(cooldown_expiry=datetime.max)


@dataclass
class FCMSender:
    """Sends through firebase-admin `messaging.send_each` (≤ 500 per call) with our named app."""

    app: firebase_admin.App
    name: str = field(default="fcm", init=False)
    _token_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings) -> FCMSender:
        if not settings.fcm_credentials:
            raise PushConfigError("PCLOUD_PUSH_BACKEND=fcm needs PCLOUD_FCM_CREDENTIALS")
        return cls(firebase_app(settings.fcm_credentials, settings.fcm_endpoint, settings.fcm_token_uri,
                                settings.http_timeout_seconds))

    def _warm_token(self) -> None:
        """Fetch the OAuth token once, not once per send_each thread (google-auth does not serialise refreshes)."""
        with self._token_lock:
            if not self.app.credential.get_credential().valid:
                try:
                    self.app.credential.get_access_token()
                except Exception as exc:  # noqa: BLE001 - google-auth raises several types; send_each reports it per message
                    log.warning("FCM token fetch failed: %s", exc)

    def send_batch(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        if messages:
            self._warm_token()
        for start in range(0, len(messages), FCM_BATCH_LIMIT):
            chunk = list(messages[start:start + FCM_BATCH_LIMIT])
            encoded, pending = [], []
            for m in chunk:
                try:
                    encoded.append(to_fcm_message(m))
                except ValueError as exc:
                    results.append(SendResult(m.id, "failed", f"invalid message: {exc}"[:300]))
                    continue
                pending.append(m)
            if not encoded:
                continue
            try:
                batch = messaging.send_each(encoded, app=self.app)
            except ValueError:
                # send_each encodes every message before it sends any, so nothing went: set the ones that do not
                # encode aside and send the rest (encoding twice only here, not on every batch: ~10 % of a send)
                encoded, pending, bad = _encodable(encoded, pending)
                results.extend(bad)
                if not encoded:
                    continue
                try:
                    batch = messaging.send_each(encoded, app=self.app)
                except fb_exceptions.FirebaseError as exc:
                    results.extend(classify(m.id, exc) for m in pending)
                    continue
            except fb_exceptions.FirebaseError as exc:  # the whole call failed (e.g. credentials)
                results.extend(classify(m.id, exc) for m in pending)
                continue
            for m, response in zip(pending, batch.responses, strict=True):
                if response.success:
                    results.append(SendResult(m.id, "sent", provider_id=response.message_id))
                else:
                    results.append(classify(m.id, response.exception))
        return results


def _encodable(encoded: list, pending: list[PushMessage]) -> tuple[list, list[PushMessage], list[SendResult]]:
    """Split a batch into the messages FCM's encoder takes and a `failed` result for each it refuses."""
    good, kept, bad = [], [], []
    for msg, m in zip(encoded, pending, strict=True):
        try:
            str(msg)  # the JSON firebase-admin would send
        except ValueError as exc:
            bad.append(SendResult(m.id, "failed", f"invalid message: {exc}"[:300]))
            continue
        good.append(msg)
        kept.append(m)
    return good, kept, bad


def make_sender(settings) -> PushSender:
    """The configured backend, checked at start-up."""
    if settings.push_backend == "fcm":
        return FCMSender.from_settings(settings)
    return LogSender()
