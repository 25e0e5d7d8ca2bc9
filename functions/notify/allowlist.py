"""Owner of the `notify_allowlist` collection: the networks an admin lets webhooks reach although not public.

`{_id: "webhooks", networks: ["192.168.1.0/24", …], updated_at, updated_by}` — one document for the box. It adds
to PCLOUD_WEBHOOK_ALLOW_NETS (the operator's setting, which the API only reports). Why so strict (`check`): an
entry opens a way from every user's webhooks into the LAN or the box, so only real CIDR networks no broader than a
/8 are taken; nothing that covers every IPv4 address as IPv4-mapped IPv6; loopback only when the entry is itself a
loopback network (`127.0.0.1/32`, `::1/128`); never the unspecified addresses (connecting to 0.0.0.0 or :: reaches
this host too). `Cached` is what the SSRF guard reads: a short TTL so other processes see a change within seconds
without a restart, and this process at once (`changed` bumps a generation every cache checks).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from datetime import datetime

from pymongo.errors import PyMongoError

from runtime.errors import BadRequest

log = logging.getLogger(__name__)

DOC_ID = "webhooks"
MAX_NETWORKS = 64
MIN_PREFIX = 8  # /0–/7 is "most of the internet" (IPv4) or nonsense (IPv6)
TTL_SECONDS = 2.0
_LOOPBACK = {4: ipaddress.ip_network("127.0.0.0/8"), 6: ipaddress.ip_network("::1/128")}
_UNSPECIFIED = {4: ipaddress.ip_network("0.0.0.0/8"), 6: ipaddress.ip_network("::/128")}
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_generation = 0


def _refuse(text: str, index: int, code: str, message: str) -> BadRequest:
    return BadRequest(message, code=code, details={"network": text, "index": index})


def check_network(raw, index: int = 0) -> str:
    """One entry, normalised (`192.168.1.0/24`; a bare address is its /32 or /128), or BadRequest."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > 64:
        raise _refuse(str(raw)[:64], index, "invalid_network", "each network must be a CIDR string like "
                                                               "192.168.1.0/24 or fd00::/8")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        hint = ""
        try:
            hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
        except ValueError:
            pass
        raise _refuse(text, index, "invalid_network", f"{text!r} is not a network in CIDR notation (like "
                                                      f"192.168.1.0/24 or fd00::/8){hint}") from None
    if net.prefixlen < MIN_PREFIX:
        raise _refuse(text, index, "network_too_broad", f"{net} is too broad: at most a /{MIN_PREFIX} may be "
                                                        "allowed (0.0.0.0/0 and ::/0 would open every address)")
    if net.version == 6 and net.supernet_of(_MAPPED):
        raise _refuse(text, index, "network_too_broad", f"{net} covers every IPv4 address (as IPv4-mapped IPv6)")
    if net.overlaps(_UNSPECIFIED[net.version]):
        raise _refuse(text, index, "network_not_allowed", f"{net} holds the unspecified address, which reaches this "
                                                          "host itself; allow loopback as 127.0.0.1/32 if you mean it")
    loopback = _LOOPBACK[net.version]
    if net.overlaps(loopback) and not net.subnet_of(loopback):
        raise _refuse(text, index, "network_too_broad", f"{net} contains the loopback address; list a loopback "
                                                        f"network ({loopback}) on its own if you mean it")
    return str(net)


def check(networks) -> list[str]:
    """The whole list, each entry checked and normalised, duplicates dropped (order kept)."""
    if not isinstance(networks, list) or len(networks) > MAX_NETWORKS:
        raise BadRequest(f"networks must be a list of at most {MAX_NETWORKS} CIDR networks", code="invalid_networks")
    return list(dict.fromkeys(check_network(n, i) for i, n in enumerate(networks)))


def load(db) -> dict:
    return db.notify_allowlist.find_one({"_id": DOC_ID}) or {"_id": DOC_ID, "networks": []}


def save(db, networks: list[str], by: str, now: datetime, session=None) -> list[str]:
    """Replace the list; the previous one back. Call `changed()` once it is committed."""
    before = db.notify_allowlist.find_one_and_update(
        {"_id": DOC_ID}, {"$set": {"networks": networks, "updated_at": now, "updated_by": by}}, upsert=True,
        session=session)
    return list((before or {}).get("networks") or [])


def changed() -> None:
    """Every cache in this process reads again at its next use (other processes: within TTL_SECONDS)."""
    global _generation
    _generation += 1


class Cached:
    """The admins' networks as `ip_network`s for the SSRF guard, read at most every `ttl` seconds.

    A failed read keeps what was last read (never-read: none, the setting alone applies) — the guard then refuses
    more, never less."""

    def __init__(self, db, ttl: float = TTL_SECONDS, clock=time.monotonic):
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self._nets: tuple = ()
        self._read_at: float | None = None
        self._generation = -1
        self._lock = threading.Lock()

    def __call__(self) -> tuple:
        now = self.clock()
        if self._generation == _generation and self._read_at is not None and now - self._read_at < self.ttl:
            return self._nets
        with self._lock:
            generation = _generation
            try:
                doc = self.db.notify_allowlist.find_one({"_id": DOC_ID}, {"networks": 1})
            except PyMongoError as exc:
                log.warning("webhook allowlist unreadable, keeping the last one: %s", exc)
                return self._nets
            self._nets = tuple(ipaddress.ip_network(n) for n in ((doc or {}).get("networks") or []))
            self._read_at, self._generation = now, generation
            return self._nets
