"""Which sign-in providers this server offers, and when the demo sign-in (local Google stand-in) is allowed.

The demo exists so a newcomer can sign in after `make run` without a Google project. It must never be
reachable by anyone but the person at the machine, so it needs all of: the operator (infra/demo.sh) asked
for it, no real provider is configured, the gateway listens on loopback only and the "Google" it talks to
is itself on loopback.

In runtime because both the portal (its sign-in page) and the SSO (what /auth/login accepts) decide by it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Provider:
    id: str  # the path segment of /auth/login/{id}
    label: str
    demo: bool = False


def is_loopback_host(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_is_loopback(bind: str) -> bool:
    """`PCLOUD_BIND` is HOST:PORT; 0.0.0.0, :: or a LAN address mean others can reach us."""
    host, _, _ = bind.rpartition(":")
    return is_loopback_host(host)


def url_is_loopback(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def demo_signin_active(settings) -> bool:
    return bool(settings.demo_signin and settings.google_enabled and not settings.facebook_enabled
                and bind_is_loopback(settings.bind) and url_is_loopback(settings.google_discovery_url))


def providers(settings) -> list[Provider]:
    """The buttons of the sign-in page, in order."""
    if demo_signin_active(settings):
        return [Provider("google", "Demo sign-in (local stand-in for Google)", demo=True)]
    found = []
    # with the demo flag set but its conditions unmet, "Google" is the stand-in: never offer it
    if settings.google_enabled and not settings.demo_signin:
        found.append(Provider("google", "Sign in with Google"))
    if settings.facebook_enabled:
        found.append(Provider("facebook", "Sign in with Facebook"))
    return found
