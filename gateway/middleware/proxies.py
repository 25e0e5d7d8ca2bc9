"""PCLOUD_TRUSTED_PROXIES: believe X-Forwarded-For/-Proto only from the proxies in front of us (ProxyFix).

A number N trusts the last N hops whoever sends them (the gateway is reachable only through them); a list
of addresses/networks applies the headers only when the direct peer is one of them, so a client talking to
the gateway directly cannot pick the address its anonymous rate limit is counted for.
"""

from __future__ import annotations

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


def trusted_proxies(app, setting: str):
    if not setting:
        return app
    if setting.isdigit():
        hops = int(setting)
        return ProxyFix(app, x_for=hops, x_proto=hops) if hops else app
    networks = [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()]
    fixed = ProxyFix(app, x_for=1, x_proto=1)

    def from_known_proxy(environ, start_response):
        try:
            peer = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
        except ValueError:
            peer = None
        if peer is not None and any(peer in net for net in networks):
            return fixed(environ, start_response)
        return app(environ, start_response)

    return from_known_proxy
