"""Security headers on every response the gateway sends (CONTRACT §2 portal hardening).

Functions set their own Content-Security-Policy (the portal's and the sign-in pages' are strict); an HTML
response that comes without one still gets `frame-ancestors 'none'` (no clickjacking), and every response
`nosniff`, plus HSTS when PCloud is served over https.
"""

from __future__ import annotations

FALLBACK_CSP = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"


def security_headers(headers: list[tuple[str, str]], https: bool) -> list[tuple[str, str]]:
    present = {name.lower() for name, _ in headers}
    out = list(headers)
    if "x-content-type-options" not in present:
        out.append(("X-Content-Type-Options", "nosniff"))
    if https and "strict-transport-security" not in present:
        out.append(("Strict-Transport-Security", "max-age=31536000"))
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if content_type.lower().startswith("text/html"):
        if "content-security-policy" not in present:
            out.append(("Content-Security-Policy", FALLBACK_CSP))
        if "x-frame-options" not in present:
            out.append(("X-Frame-Options", "DENY"))
        if "referrer-policy" not in present:
            out.append(("Referrer-Policy", "same-origin"))
    return out
