"""SSRF-safe webhook POSTs: resolve the host, refuse non-global addresses, connect to the address that was checked.

Why each part:
* A URL's host is resolved here and every address it resolves to must be global (loopback, private, link-local,
  shared, multicast, reserved and unspecified ranges are refused; IPv4-mapped IPv6 is judged as the IPv4 it
  maps), unless an admin allowed that network (the PCLOUD_WEBHOOK_ALLOW_NETS setting, or the admins' list of the
  API: allowlist.py, read fresh through `extra`). The box's own public host is refused too unless allowed: a
  webhook must not call PCloud itself.
* DNS rebinding (a name that resolves to a public address when checked and to 127.0.0.1 when connected) cannot
  work: the connection goes to the checked address itself (`Host` and TLS SNI/verification keep the name).
* Redirects are never followed: a 3xx is a failed attempt (a public URL could redirect inward).
* Every step has a timeout: the resolver's (getaddrinfo has none, so it runs on a small thread pool) and the
  connect + answer of the POST; at most 4 KiB of the answer is read.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

MAX_URL_LENGTH = 2048
ANSWER_BYTES = 4096
RESOLVE_TIMEOUT_SECONDS = 3.0
RETRY_AFTER_STATUSES = (429, 503)  # the answers whose Retry-After means "not before then" (RFC 9110 §10.2.3)


class Refused(Exception):
    """The URL may not be called: `code` is the API error code, `details` what was found."""

    def __init__(self, message: str, code: str = "url_not_allowed", details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.details = details or {}


class Resolver(Protocol):
    """Host name → addresses (strings), or OSError. Backends: SystemResolver; tests bring a static one."""

    def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """getaddrinfo on a small pool so a hung resolver costs at most `timeout` seconds."""

    name = "system"
    _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")

    def __init__(self, timeout: float = RESOLVE_TIMEOUT_SECONDS):
        self.timeout = timeout

    def resolve(self, host: str, port: int) -> list[str]:
        future = self._pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=self.timeout)
        except FutureTimeout:
            raise OSError(f"resolving {host} took longer than {self.timeout} s") from None
        return list(dict.fromkeys(info[4][0] for info in infos))


def _reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not one a webhook may reach (None: it is global)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{name}"):
            return name
    if not ip.is_global:
        return "non_global"  # 100.64.0.0/10 (shared) and the other special-purpose ranges
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses webhooks may reach: global ones, plus the networks an admin allowed — the setting's
    (`allow_nets`, fixed at start-up) and the API's (`extra()`, asked on every check: it caches briefly)."""

    allow_nets: tuple = ()
    own_hosts: tuple[str, ...] = ()  # the box's public host names/addresses (refused unless allowed)
    extra: Callable[[], tuple] | None = None

    @classmethod
    def from_settings(cls, settings, extra: Callable[[], tuple] | None = None) -> AddressPolicy:
        own = urlsplit(settings.public_url).hostname
        return cls(tuple(ipaddress.ip_network(n) for n in settings.webhook_allow_nets),
                   (own.lower(),) if own else (), extra)

    def allowed(self, address: str) -> bool:
        """Inside an allowed network (an IPv4-mapped IPv6 address also as the IPv4 it maps)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        ips = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ips.append(ip.ipv4_mapped)
        nets = self.allow_nets + (self.extra() if self.extra is not None else ())
        return any(i in net for i in ips for net in nets if net.version == i.version)

    def check_address(self, address: str, host: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self.allowed(address):
            return
        reason = _reason(ip)
        if reason is None and (address in self.own_hosts or host.lower() in self.own_hosts):
            reason = "this_server"
        if reason is not None:
            raise Refused(f"{host} resolves to {address} ({reason.replace('_', '-')} address); webhooks may "
                          "only call public addresses unless an admin allows that network",
                          details={"host": host, "address": address, "reason": reason})


@dataclass(frozen=True)
class Target:
    """A URL checked once: what to connect to (`address`) and what to call it (`host`, `path`)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str
    host_header: str


def parse_url(url) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path+query, Host header) of an http(s) URL, or Refused with code invalid_url."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise Refused(f"url must be an http(s) URL of at most {MAX_URL_LENGTH} characters", code="invalid_url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused(f"url is not valid: {exc}", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("url must be an http:// or https:// URL with a host", code="invalid_url")
    if parts.username or parts.password:
        raise Refused("url must not carry credentials; the signature authenticates deliveries", code="invalid_url")
    if parts.fragment:
        raise Refused("url must not have a #fragment", code="invalid_url")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = (parts.scheme, port) in (("http", 80), ("https", 443))
    shown = f"[{host}]" if ":" in host else host
    return parts.scheme, host, port, path, shown if default else f"{shown}:{port}"


def check_url(url, policy: AddressPolicy, resolver: Resolver) -> Target:
    """Resolve and judge every address of the URL's host; the Target to connect to, or Refused."""
    scheme, host, port, path, host_header = parse_url(url)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = resolver.resolve(host, port)
        except OSError as exc:
            raise Refused(f"cannot resolve {host}: {exc}", code="url_unresolvable", details={"host": host}) from None
    if not addresses:
        raise Refused(f"{host} resolves to no address", code="url_unresolvable", details={"host": host})
    for address in addresses:  # all of them: a name with one public and one inner address is refused
        policy.check_address(address, host)
    return Target(scheme, host, port, path, addresses[0], host_header)


@dataclass
class Answer:
    """One attempt's outcome: `status` None when no HTTP answer came (`error` says why)."""

    status: int | None
    body: str
    duration_ms: int
    error: str | None = None
    retry_after: str | None = None  # the Retry-After header of a 429 or 503, as sent (the deliverer judges it)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class SafeHttpSender:
    """POSTs to checked addresses over a pool per (scheme, address, port, host): keep-alive between deliveries."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None, timeout: float = 10.0,
                 pool_size: int = 8, max_pools: int = 64):
        self.policy = policy
        self.resolver = resolver or SystemResolver()
        self.timeout = timeout
        self.pool_size = pool_size
        self.max_pools = max_pools
        self._pools: dict[tuple, urllib3.connectionpool.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self, target: Target):
        key = (target.scheme, target.address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if len(self._pools) >= self.max_pools:
                    _, old = self._pools.popitem()
                    old.close()
                timeout = urllib3.Timeout(connect=min(self.timeout, 5.0), read=self.timeout, total=self.timeout)
                if target.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        target.address, target.port, timeout=timeout, maxsize=self.pool_size, block=False,
                        retries=False, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
                        server_hostname=target.host, assert_hostname=target.host)
                else:
                    pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout,
                                                      maxsize=self.pool_size, block=False, retries=False)
                self._pools[key] = pool
            return pool

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """One attempt; Refused when the URL's addresses are not allowed (nothing is sent then)."""
        target = check_url(url, self.policy, self.resolver)
        started = time.monotonic()
        try:
            resp = self._pool(target).urlopen(
                "POST", target.path, body=body, headers={**headers, "Host": target.host_header},
                redirect=False, retries=False, assert_same_host=False, preload_content=False)
            try:
                answer = resp.read(ANSWER_BYTES, decode_content=False)
            finally:
                if resp.length_remaining != 0:  # more (or unknown) left: drop the connection, never read it all
                    resp.close()
                resp.release_conn()
        except (Urllib3Error, OSError) as exc:
            return Answer(None, "", _ms(started), error=f"{type(exc).__name__}: {exc}"[:500])
        status = resp.status
        error = None
        if 300 <= status < 400:
            error = f"redirect to {resp.headers.get('Location', '?')[:200]} not followed"
        elif not 200 <= status < 300:
            error = f"answered {status}"
        retry_after = resp.headers.get("Retry-After") if status in RETRY_AFTER_STATUSES else None
        return Answer(status, answer.decode("utf-8", "replace"), _ms(started), error,
                      retry_after[:100] if retry_after else None)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
