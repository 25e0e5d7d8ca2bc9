"""Response headers of every portal response: a strict Content-Security-Policy and friends.

No inline script or style is allowed anywhere, so injected markup cannot run; the only other origin the
browser may talk to is the object store's when blocks go straight to S3/MinIO.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit


def store_origin(store_url: str) -> str | None:
    """Where presigned block URLs point when the store is S3-compatible (None: same origin)."""
    parts = urlsplit(store_url)
    if parts.scheme != "s3":
        return None
    endpoint = (parse_qs(parts.query).get("endpoint") or [None])[0]
    if endpoint:
        ep = urlsplit(endpoint)
        return f"{ep.scheme}://{ep.netloc}"
    return "https://*.amazonaws.com"


def content_security_policy(settings) -> str:
    connect = ["'self'"]
    origin = store_origin(settings.store_url)
    if origin:
        connect.append(origin)
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src {' '.join(connect)}",
        "worker-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ])


def apply_headers(response, settings, csp: str):
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if settings.is_https:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response
