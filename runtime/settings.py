"""Settings read once from the environment (12-factor), with the defaults of CONTRACT §1.

Every other module receives a `Settings`; only this module reads `os.environ`, so a bad value fails
at start-up with the variable's name instead of deep inside a request.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


DEFAULT_SIBLING_SCOPES = ("openid", "profile", "email")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
API_SCOPES = ("files.read", "files.write", "devices", "pairing", "sync", "graph.read", "graph.write", "apps",
              "search", "admin")


@dataclass(frozen=True)
class SsoClient:
    """A sibling web app registered through PCLOUD_SSO_CLIENTS."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SIBLING_SCOPES  # the most its tokens may carry (CONTRACT §2)

    @property
    def public(self) -> bool:
        return not self.client_secret

    @property
    def origins(self) -> tuple[str, ...]:
        found = []
        for uri in self.redirect_uris + self.post_logout_redirect_uris:
            parts = urlsplit(uri)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in found:
                found.append(origin)
        return tuple(found)


@dataclass(frozen=True)
class Settings:
    bind: str = "127.0.0.1:8000"
    public_url: str = "http://127.0.0.1:8000"
    data_dir: Path = Path("var")
    mongo_url: str = "mongodb://127.0.0.1:27017/pcloud?directConnection=true"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "pcloud:"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    store_url: str = ""
    stores: tuple[tuple[str, str], ...] = ()  # PCLOUD_STORES: (name, url) besides `default` (replica targets)
    scrub_days: int = 30  # PCLOUD_SCRUB_DAYS: every copy of every block is re-hashed at least this often
    google_client_id: str | None = None
    google_client_secret: str | None = None
    google_mobile_client_ids: tuple[str, ...] = ()
    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    # a user's own Google Drive as a replica store (functions/files/clouds.py); off until the client is set
    gdrive_client_id: str | None = None
    gdrive_client_secret: str | None = None
    gdrive_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    gdrive_token_url: str = "https://oauth2.googleapis.com/token"
    gdrive_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    gdrive_api_url: str = "https://www.googleapis.com/drive/v3"
    gdrive_upload_url: str = "https://www.googleapis.com/upload/drive/v3"
    facebook_client_id: str | None = None
    facebook_client_secret: str | None = None
    facebook_authorize_url: str = "https://www.facebook.com/v19.0/dialog/oauth"
    facebook_graph_url: str = "https://graph.facebook.com/v19.0/"
    sso_clients: tuple[SsoClient, ...] = ()
    push_backend: str = "log"
    fcm_credentials: str | None = None
    fcm_endpoint: str = "https://fcm.googleapis.com"
    fcm_token_uri: str | None = None
    trash_days: int = 90
    versions_keep: int = 10  # previous versions kept per file (0: none)
    versions_days: int = 30  # and none older than this
    event_retention_days: int = 30
    search_url: str = ""
    search_api_key: str | None = None
    search_index_name: str = "pcloud"
    pairing_ack_seconds: int = 15
    pairing_confirm_seconds: int = 120
    package_ack_seconds: int = 30
    access_token_seconds: int = 900
    sso_session_seconds: int = 1209600
    rate_limit_per_minute: int = 600
    admin_emails: tuple[str, ...] = ()
    trusted_proxies: str = ""  # a hop count ("1") or a comma list of proxy addresses/networks
    long_polls_per_user: int = 4
    max_blocks_per_file: int = 10000
    http_timeout_seconds: float = 10.0
    function_urls: dict = field(default_factory=dict)
    demo_signin: bool = False
    log_level: str = "INFO"
    metrics_dir: str | None = None
    app_max_bytes: int = 50 * 1024 * 1024
    action_max_seconds: int = 900
    api_url: str = ""  # the gateway's base URL as apps reach it (PCLOUD_API_URL); public_url when unset
    streams_per_user: int = 6  # open /events/v1/stream connections per user (a browser allows 6 per host)
    stream_heartbeat_seconds: int = 15  # an SSE comment this often keeps proxies from closing an idle stream
    stream_max_seconds: int = 3600  # a stream ends after this (the browser resumes with Last-Event-ID)
    stream_threads: int = 8  # streams a threaded server process (the gateway) holds at once; the rest 503
    stream_bind: str = "127.0.0.1:8001"  # where the `stream` process (gunicorn's asyncio worker) listens
    webhook_allow_nets: tuple[str, ...] = ()  # non-global networks an admin lets webhooks reach
    webhook_timeout_seconds: float = 10.0  # one webhook POST, connect + answer
    webhook_max_attempts: int = 8  # per delivery, then dead
    webhook_backoff_seconds: float = 10.0  # first retry delay; doubles each retry (capped at an hour)
    webhook_disable_after: int = 15  # consecutive failed attempts before a webhook is disabled
    storage_warn_percent: int = 90  # the data volume this full → storage.volume.nearly_full

    @property
    def apps_dir(self) -> Path:
        return self.data_dir / "apps"

    @property
    def app_api_url(self) -> str:
        return (self.api_url or self.public_url).rstrip("/")

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def is_https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def google_enabled(self) -> bool:
        return bool(self.google_client_id and self.google_client_secret)

    @property
    def gdrive_enabled(self) -> bool:
        return bool(self.gdrive_client_id and self.gdrive_client_secret)

    @property
    def facebook_enabled(self) -> bool:
        return bool(self.facebook_client_id and self.facebook_client_secret)

    def queue_name(self, name: str) -> str:
        """rq queue names carry the Redis prefix so parallel tests never share a queue."""
        return f"{self.redis_prefix}{name}"

    def sso_client(self, client_id: str) -> SsoClient | None:
        return next((c for c in self.sso_clients if c.client_id == client_id), None)

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)


WEB = ("http", "https")


def _int(env, name, default, minimum=None, maximum=None):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _url(env, name, default, schemes):
    value = env.get(name) or default
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise SettingsError(f"{name} must be a {'/'.join(schemes)} URL, got {value!r}")
    return value


def _bool(env, name, default):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _json_setting(env, name: str, kind: type, shape: str):
    """A setting holding JSON of one kind (None when unset or blank); SettingsError names it and the shape."""
    raw = env.get(name) or ""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be {shape}: {exc}") from None
    if not isinstance(value, kind):
        raise SettingsError(f"{name} must be {shape}")
    return value


def _sso_clients(env) -> tuple[SsoClient, ...]:
    items = _json_setting(env, "PCLOUD_SSO_CLIENTS", list, "a JSON list of objects") or []
    clients = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("client_id"), str) or not item["client_id"]:
            raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}] needs a non-empty client_id")
        uris = item.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}] needs redirect_uris, a non-empty list of URLs")
        logout_uris = item.get("post_logout_redirect_uris") or []
        if not isinstance(logout_uris, list) or not all(isinstance(u, str) for u in logout_uris):
            raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}].post_logout_redirect_uris must be a list of URLs")
        for uri in uris + logout_uris + [item.get("backchannel_logout_uri") or "http://x"]:
            if urlsplit(uri).scheme not in ("http", "https"):
                raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}] has a URI that is not http(s): {uri!r}")
        scopes = item.get("scopes", " ".join(DEFAULT_SIBLING_SCOPES))
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
            raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}].scopes must be a space-separated string or a list")
        unknown = [x for x in scopes if x not in OIDC_SCOPES + API_SCOPES]
        if unknown:
            raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}].scopes has unknown scopes: {' '.join(unknown)}")
        if item["client_id"].startswith("app:"):
            raise SettingsError(f"PCLOUD_SSO_CLIENTS[{i}].client_id may not start with 'app:' (app tokens)")
        clients.append(
            SsoClient(
                client_id=item["client_id"],
                client_secret=item.get("client_secret") or None,
                redirect_uris=tuple(uris),
                post_logout_redirect_uris=tuple(logout_uris),
                backchannel_logout_uri=item.get("backchannel_logout_uri") or None,
                scopes=tuple(dict.fromkeys(scopes)),
            )
        )
    if "pcloud" in {c.client_id for c in clients}:
        raise SettingsError("PCLOUD_SSO_CLIENTS may not use client_id 'pcloud' (the first-party client)")
    return tuple(clients)


def _trusted_proxies(env) -> str:
    """PCLOUD_TRUSTED_PROXIES: how many proxies stand in front (`1`), or which ones (`10.0.0.1,10.1.0.0/16`)."""
    import ipaddress

    raw = (env.get("PCLOUD_TRUSTED_PROXIES") or "").strip()
    if not raw or raw.isdigit():
        return raw
    for part in raw.split(","):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise SettingsError("PCLOUD_TRUSTED_PROXIES must be a number of proxies or a comma list of "
                                f"addresses/networks, got {part.strip()!r}") from None
    return raw


_STORE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _stores(env) -> tuple[tuple[str, str], ...]:
    """PCLOUD_STORES: a JSON object of named stores, `{"disk2": "file:///mnt/b", "s3": "s3://bucket?..."}`, in
    preference order. The default store (PCLOUD_STORE_URL) is always there as `default`."""
    items = _json_setting(env, "PCLOUD_STORES", dict, "a JSON object of name -> store URL")
    if not items:
        return ()
    found = []
    for name, url in items.items():
        if not _STORE_NAME.fullmatch(name) or name == "default":
            raise SettingsError(f"PCLOUD_STORES: {name!r} is not a store name (a-z, 0-9, '-', '_', at most 32; "
                                "'default' is PCLOUD_STORE_URL)")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("file", "s3"):
            raise SettingsError(f"PCLOUD_STORES[{name}] must be file://PATH or s3://BUCKET?..., got {url!r}")
        found.append((name, url))
    return tuple(found)


def load_settings(environ=None) -> Settings:
    """Read and validate every PCLOUD_* variable; raise SettingsError on the first bad one."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("PCLOUD_DATA_DIR") or "var").resolve()
    bind = env.get("PCLOUD_BIND") or "127.0.0.1:8000"
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"PCLOUD_BIND must be HOST:PORT, got {bind!r}")
    public_url = _url(env, "PCLOUD_PUBLIC_URL", "http://127.0.0.1:8000", ("http", "https")).rstrip("/")
    store_url = env.get("PCLOUD_STORE_URL") or f"file://{data_dir / 'blobs'}"
    if urlsplit(store_url).scheme not in ("file", "s3"):
        raise SettingsError(f"PCLOUD_STORE_URL must be file://PATH or s3://BUCKET?..., got {store_url!r}")
    fcm_credentials = env.get("PCLOUD_FCM_CREDENTIALS") or env.get("GOOGLE_APPLICATION_CREDENTIALS") or None
    push_backend = env.get("PCLOUD_PUSH_BACKEND") or ("fcm" if fcm_credentials else "log")
    if push_backend not in ("fcm", "log"):
        raise SettingsError(f"PCLOUD_PUSH_BACKEND must be fcm or log, got {push_backend!r}")
    if push_backend == "fcm" and not fcm_credentials:
        raise SettingsError("PCLOUD_PUSH_BACKEND=fcm needs PCLOUD_FCM_CREDENTIALS (a service-account JSON file)")
    prefix = env.get("PCLOUD_REDIS_PREFIX", "pcloud:")
    function_urls = {}
    for key, value in env.items():
        if key.startswith("PCLOUD_FUNCTION_") and key.endswith("_URL") and value:
            name = key[len("PCLOUD_FUNCTION_") : -len("_URL")].lower()
            function_urls[name] = _url(env, key, value, ("http", "https")).rstrip("/")
    mobile_ids = tuple(x.strip() for x in (env.get("PCLOUD_GOOGLE_MOBILE_CLIENT_IDS") or "").split(",") if x.strip())
    timeout = env.get("PCLOUD_HTTP_TIMEOUT_SECONDS") or "10"
    try:
        http_timeout = float(timeout)
        if http_timeout <= 0:
            raise ValueError
    except ValueError:
        raise SettingsError(f"PCLOUD_HTTP_TIMEOUT_SECONDS must be a positive number, got {timeout!r}") from None
    level = (env.get("PCLOUD_LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"PCLOUD_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return Settings(
        bind=bind,
        public_url=public_url,
        data_dir=data_dir,
        mongo_url=_url(env, "PCLOUD_MONGO_URL", Settings.mongo_url, ("mongodb", "mongodb+srv")),
        redis_url=_url(env, "PCLOUD_REDIS_URL", Settings.redis_url, ("redis", "rediss", "unix")),
        redis_prefix=prefix,
        amqp_url=_url(env, "PCLOUD_AMQP_URL", Settings.amqp_url, ("amqp", "amqps")),
        store_url=store_url,
        stores=_stores(env),
        scrub_days=_int(env, "PCLOUD_SCRUB_DAYS", 30, minimum=1),
        google_client_id=env.get("PCLOUD_GOOGLE_CLIENT_ID") or None,
        google_client_secret=env.get("PCLOUD_GOOGLE_CLIENT_SECRET") or None,
        google_mobile_client_ids=mobile_ids,
        google_discovery_url=_url(env, "PCLOUD_GOOGLE_DISCOVERY_URL", Settings.google_discovery_url, ("http", "https")),
        gdrive_client_id=env.get("PCLOUD_GDRIVE_CLIENT_ID") or None,
        gdrive_client_secret=env.get("PCLOUD_GDRIVE_CLIENT_SECRET") or None,
        gdrive_authorize_url=_url(env, "PCLOUD_GDRIVE_AUTHORIZE_URL", Settings.gdrive_authorize_url, WEB),
        gdrive_token_url=_url(env, "PCLOUD_GDRIVE_TOKEN_URL", Settings.gdrive_token_url, WEB),
        gdrive_revoke_url=_url(env, "PCLOUD_GDRIVE_REVOKE_URL", Settings.gdrive_revoke_url, WEB),
        gdrive_api_url=_url(env, "PCLOUD_GDRIVE_API_URL", Settings.gdrive_api_url, WEB).rstrip("/"),
        gdrive_upload_url=_url(env, "PCLOUD_GDRIVE_UPLOAD_URL", Settings.gdrive_upload_url, WEB).rstrip("/"),
        facebook_client_id=env.get("PCLOUD_FACEBOOK_CLIENT_ID") or None,
        facebook_client_secret=env.get("PCLOUD_FACEBOOK_CLIENT_SECRET") or None,
        facebook_authorize_url=_url(env, "PCLOUD_FACEBOOK_AUTHORIZE_URL", Settings.facebook_authorize_url, WEB),
        facebook_graph_url=_url(env, "PCLOUD_FACEBOOK_GRAPH_URL", Settings.facebook_graph_url, WEB).rstrip("/") + "/",
        sso_clients=_sso_clients(env),
        push_backend=push_backend,
        fcm_credentials=fcm_credentials,
        fcm_endpoint=_url(env, "PCLOUD_FCM_ENDPOINT", Settings.fcm_endpoint, ("http", "https")).rstrip("/"),
        fcm_token_uri=env.get("PCLOUD_FCM_TOKEN_URI") or None,
        trash_days=_int(env, "PCLOUD_TRASH_DAYS", 90, minimum=0),
        versions_keep=_int(env, "PCLOUD_VERSIONS_KEEP", 10, minimum=0),
        versions_days=_int(env, "PCLOUD_VERSIONS_DAYS", 30, minimum=0),
        event_retention_days=_int(env, "PCLOUD_EVENT_RETENTION_DAYS", 30, minimum=1),
        search_url=_url(env, "PCLOUD_SEARCH_URL", "", ("http", "https")).rstrip("/") if env.get("PCLOUD_SEARCH_URL")
        else "",
        search_api_key=env.get("PCLOUD_SEARCH_API_KEY") or None,
        search_index_name=env.get("PCLOUD_SEARCH_INDEX") or "pcloud",
        pairing_ack_seconds=_int(env, "PCLOUD_PAIRING_ACK_SECONDS", 15, minimum=1),
        pairing_confirm_seconds=_int(env, "PCLOUD_PAIRING_CONFIRM_SECONDS", 120, minimum=1),
        package_ack_seconds=_int(env, "PCLOUD_PACKAGE_ACK_SECONDS", 30, minimum=1),
        access_token_seconds=_int(env, "PCLOUD_ACCESS_TOKEN_SECONDS", 900, minimum=1, maximum=900),
        sso_session_seconds=_int(env, "PCLOUD_SSO_SESSION_SECONDS", 1209600, minimum=1),
        rate_limit_per_minute=_int(env, "PCLOUD_RATE_LIMIT_PER_MINUTE", 600, minimum=1),
        admin_emails=tuple(x.strip().lower() for x in (env.get("PCLOUD_ADMIN_EMAILS") or "").split(",")
                           if x.strip()),
        trusted_proxies=_trusted_proxies(env),
        long_polls_per_user=_int(env, "PCLOUD_LONG_POLLS_PER_USER", 4, minimum=1),
        max_blocks_per_file=_int(env, "PCLOUD_MAX_BLOCKS_PER_FILE", 10000, minimum=1),
        http_timeout_seconds=http_timeout,
        function_urls=function_urls,
        demo_signin=_bool(env, "PCLOUD_DEMO_SIGNIN", False),
        log_level=level,
        metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        app_max_bytes=_int(env, "PCLOUD_APP_MAX_BYTES", 50 * 1024 * 1024, minimum=1024),
        action_max_seconds=_int(env, "PCLOUD_ACTION_MAX_SECONDS", 900, minimum=1),
        api_url=(_url(env, "PCLOUD_API_URL", public_url, ("http", "https")).rstrip("/")
                 if env.get("PCLOUD_API_URL") else ""),
        streams_per_user=_int(env, "PCLOUD_STREAMS_PER_USER", 6, minimum=1),
        stream_heartbeat_seconds=_int(env, "PCLOUD_STREAM_HEARTBEAT_SECONDS", 15, minimum=1, maximum=300),
        stream_max_seconds=_int(env, "PCLOUD_STREAM_MAX_SECONDS", 3600, minimum=5),
        stream_threads=_int(env, "PCLOUD_STREAM_THREADS", 8, minimum=1),
        stream_bind=env.get("PCLOUD_STREAM_BIND") or "127.0.0.1:8001",
        webhook_allow_nets=_networks(env, "PCLOUD_WEBHOOK_ALLOW_NETS"),
        webhook_timeout_seconds=_positive(env, "PCLOUD_WEBHOOK_TIMEOUT_SECONDS", 10.0),
        webhook_max_attempts=_int(env, "PCLOUD_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=50),
        webhook_backoff_seconds=_positive(env, "PCLOUD_WEBHOOK_BACKOFF_SECONDS", 10.0),
        webhook_disable_after=_int(env, "PCLOUD_WEBHOOK_DISABLE_AFTER", 15, minimum=1),
        storage_warn_percent=_int(env, "PCLOUD_STORAGE_WARN_PERCENT", 90, minimum=1, maximum=100),
    )


def _positive(env, name, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
        if value <= 0:
            raise ValueError
    except ValueError:
        raise SettingsError(f"{name} must be a positive number, got {raw!r}") from None
    return value


def _networks(env, name) -> tuple[str, ...]:
    """A comma list of addresses/networks (`127.0.0.1/32,10.0.0.0/8`), each checked; normalised."""
    import ipaddress

    out = []
    for part in (env.get(name) or "").split(","):
        if part.strip():
            try:
                out.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                raise SettingsError(f"{name} must be a comma list of addresses/networks, "
                                    f"got {part.strip()!r}") from None
    return tuple(out)
