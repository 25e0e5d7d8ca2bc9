"""The one table of functions the gateway serves: prefix, auth policy, scopes, body limit, factory.

Scopes (CONTRACT §2): `read_scope` is what GET/HEAD need, `write_scope` every other method; None = the
function decides on its own (or needs no identity). `path_scopes` overrides both for sub-prefixes.

A function runs in-process (default) or, when PCLOUD_FUNCTION_<NAME>_URL is set, in its own deployment
that the gateway proxies to — the same code either way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
BLOCK_SIZE = 4 * MIB


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    prefixes: tuple[str, ...]
    auth: str  # required | optional | none
    body_limit: int
    factory: str  # "package:create_app"
    anonymous_paths: tuple[str, ...] = ()  # path prefixes inside the function that need no identity
    optional_paths: tuple[str, ...] = ()  # path prefixes that need none but are told who is signed in, if anyone
    cookie_auth: bool = True  # may the portal's SSO cookie (+ CSRF header) identify the caller here?
    read_scope: str | None = None  # needed for GET/HEAD
    write_scope: str | None = None  # needed for every other method
    path_scopes: tuple[tuple[str, str | None, str | None], ...] = ()  # (prefix, read, write) overrides
    long_poll_params: tuple[str, ...] = ()  # a GET with one of these > 0 is a long-poll (capped per user)
    streams: bool = False  # answers hold the connection open (SSE): at most PCLOUD_STREAM_THREADS per process

    def load_factory(self):
        module_name, _, attr = self.factory.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def auth_for(self, path: str) -> str:
        if any(path.startswith(p) for p in self.anonymous_paths):
            return "none"
        if any(path.startswith(p) for p in self.optional_paths):
            return "optional"
        return self.auth

    def scope_for(self, path: str, method: str) -> str | None:
        """The scope this call needs, or None when the gateway checks none here."""
        read, write = self.read_scope, self.write_scope
        for prefix, p_read, p_write in self.path_scopes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                read, write = p_read, p_write
                break
        return read if method in ("GET", "HEAD") else write


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("sso", ("/auth", "/.well-known"), "none", 64 * KIB, "functions.sso:create_app", cookie_auth=False),
    FunctionSpec("files", ("/files/v1",), "required", 4 * MIB, "functions.files:create_app",
                 read_scope="files.read", write_scope="files.write",
                 # the one-time OAuth state names who connects; a portal session, if any, must be that person
                 optional_paths=("/files/v1/clouds/google-drive/callback",),
                 path_scopes=(("/files/v1/uploads", "files.write", "files.write"),)),  # GET …/urls: PUT links
    FunctionSpec("links", ("/s",), "none", 64 * KIB, "functions.files.public:create_app", cookie_auth=False),
    FunctionSpec("blobs", ("/blobs/v1",), "none", BLOCK_SIZE + 64 * KIB, "functions.blobs:create_app",
                 cookie_auth=False),
    FunctionSpec("pairing", ("/pairing/v1", "/devices/v1"), "required", 64 * KIB, "functions.pairing:create_app",
                 read_scope="pairing", write_scope="pairing", path_scopes=(("/devices/v1", "devices", "devices"),),
                 long_poll_params=("wait",)),
    FunctionSpec("mobile_api", ("/mobile/v1",), "required", 4 * MIB, "mobile_api:create_app",
                 anonymous_paths=("/mobile/v1/auth/",), cookie_auth=False, read_scope="sync", write_scope="sync"),
    FunctionSpec("events", ("/events/v1",), "required", 64 * KIB, "functions.events:create_app",
                 read_scope="graph.read", write_scope="graph.read"),
    FunctionSpec("stream", ("/events/v1/stream",), "required", 64 * KIB, "functions.stream:create_app",
                 read_scope="graph.read", write_scope="graph.read", streams=True),
    FunctionSpec("graph", ("/graph/v1",), "required", MIB, "functions.graph:create_app",
                 read_scope="graph.read", write_scope="graph.read"),
    FunctionSpec("search", ("/search/v1",), "required", 64 * KIB, "functions.search:create_app",
                 read_scope="search", write_scope="search"),
    FunctionSpec("admin", ("/admin/v1",), "required", 64 * KIB, "functions.admin:create_app",
                 read_scope="admin", write_scope="admin"),
    FunctionSpec("account", ("/account/v1",), "required", 64 * KIB, "functions.account:create_app"),
    # the notifier's webhooks and rules are about device status, so the `devices` scope reaches them; the
    # networks webhooks may reach are the box's, for admins
    FunctionSpec("notify", ("/notify/v1",), "required", 64 * KIB, "functions.notify:create_app",
                 read_scope="devices", write_scope="devices", path_scopes=(("/notify/v1/admin", "admin", "admin"),)),
    FunctionSpec("echo", ("/echo/v1",), "optional", 64 * KIB, "functions.echo:create_app"),
    FunctionSpec("portal", ("/portal", "/static"), "optional", 64 * KIB, "functions.portal:create_app"),
    FunctionSpec("apps", ("/apps/v1", "/apps"), "required", 50 * MIB + 64 * KIB, "functions.apps:create_app",
                 read_scope="apps", write_scope="apps"),
)


def match(path: str, functions=FUNCTIONS) -> FunctionSpec | None:
    """Longest prefix wins; a prefix matches whole path segments only."""
    best = None
    for spec in functions:
        for prefix in spec.prefixes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), spec)
    return best[1] if best else None
