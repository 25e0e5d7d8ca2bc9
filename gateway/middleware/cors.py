"""CORS for registered sibling origins only (their redirect URIs' origins) and our own public origin."""

from __future__ import annotations

from urllib.parse import urlsplit

ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id, X-CSRF-Token"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


class Cors:
    def __init__(self, settings):
        parts = urlsplit(settings.public_url)
        origins = {f"{parts.scheme}://{parts.netloc}"}
        for client in settings.sso_clients:
            origins.update(client.origins)
        self.origins = frozenset(origins)

    def allowed(self, environ) -> str | None:
        origin = environ.get("HTTP_ORIGIN")
        return origin if origin in self.origins else None

    def headers(self, origin: str, preflight: bool = False) -> list[tuple[str, str]]:
        out = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
               ("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, ETag")]
        if preflight:
            out += [("Access-Control-Allow-Methods", ALLOW_METHODS), ("Access-Control-Allow-Headers", ALLOW_HEADERS),
                    ("Access-Control-Max-Age", "600")]
        return out
