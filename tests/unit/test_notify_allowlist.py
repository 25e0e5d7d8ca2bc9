"""The admins' webhook allowance: which networks may be listed (strict CIDR, nothing too broad, loopback only
explicitly) and how the SSRF guard combines them with the setting — no database needed."""

from __future__ import annotations

import ipaddress

import pytest

from functions.notify import allowlist
from functions.notify.netguard import AddressPolicy, Refused
from runtime.errors import BadRequest


@pytest.mark.parametrize(("given", "stored"), [
    ("192.168.1.0/24", "192.168.1.0/24"), (" 10.0.0.0/8 ", "10.0.0.0/8"), ("127.0.0.1/32", "127.0.0.1/32"),
    ("127.0.0.0/8", "127.0.0.0/8"), ("127.0.0.1", "127.0.0.1/32"), ("fd00::/8", "fd00::/8"),
    ("::1/128", "::1/128"), ("FE80::/10", "fe80::/10"), ("100.64.0.0/10", "100.64.0.0/10"),
    ("::ffff:192.168.1.0/120", "::ffff:c0a8:100/120"),
])
def test_networks_are_normalised(given, stored):
    assert allowlist.check_network(given) == stored


@pytest.mark.parametrize(("given", "code", "says"), [
    ("0.0.0.0/0", "network_too_broad", "too broad"), ("::/0", "network_too_broad", "too broad"),
    ("8.0.0.0/7", "network_too_broad", "at most a /8"), ("fc00::/7", "network_too_broad", "at most a /8"),
    ("::/8", "network_too_broad", "IPv4-mapped"), ("::ffff:0:0/96", "network_too_broad", "IPv4-mapped"),
    ("::/96", "network_not_allowed", "unspecified"), ("96.0.0.0/3", "network_too_broad", "too broad"),  # 127/8 in it
    ("::/127", "network_not_allowed", "unspecified"), ("0.0.0.0/8", "network_not_allowed", "unspecified"),
    ("0.0.0.0/32", "network_not_allowed", "unspecified"), ("::/128", "network_not_allowed", "unspecified"),
    ("192.168.1.5/24", "invalid_network", "did you mean 192.168.1.0/24"),
    ("192.168.1.0/33", "invalid_network", "CIDR"), ("my-lan", "invalid_network", "CIDR"),
    ("", "invalid_network", "CIDR"), ("10.0.0.0/8,127.0.0.1/32", "invalid_network", "CIDR"),
])
def test_bad_or_over_broad_networks_are_refused_with_a_code(given, code, says):
    with pytest.raises(BadRequest) as err:
        allowlist.check(["10.1.0.0/16", given])
    assert err.value.code == code and says in str(err.value)
    assert err.value.details == {"network": given.strip(), "index": 1}


def test_the_list_itself_is_checked():
    assert allowlist.check(["10.0.0.0/8", "10.0.0.0/8", "127.0.0.1"]) == ["10.0.0.0/8", "127.0.0.1/32"]
    assert allowlist.check([]) == []
    for bad in ("10.0.0.0/8", None, {"n": 1}, ["10.0.0.0/8"] * 65):
        with pytest.raises(BadRequest) as err:
            allowlist.check(bad)
        assert err.value.code == "invalid_networks"
    with pytest.raises(BadRequest) as err:
        allowlist.check([7])
    assert err.value.code == "invalid_network"


def test_the_guard_combines_the_setting_and_the_admins_list_read_on_every_check():
    admins: list = []
    policy = AddressPolicy(allow_nets=(ipaddress.ip_network("192.168.1.0/24"),),
                           extra=lambda: tuple(ipaddress.ip_network(n) for n in admins))
    policy.check_address("192.168.1.7", "nas.lan")  # the setting's
    with pytest.raises(Refused) as err:
        policy.check_address("127.0.0.1", "localhost")
    assert err.value.details["reason"] == "loopback"
    admins.append("127.0.0.1/32")
    policy.check_address("127.0.0.1", "localhost")  # no restart, no new policy
    policy.check_address("::ffff:127.0.0.1", "localhost")  # IPv4-mapped judged as the IPv4 it maps
    with pytest.raises(Refused):
        policy.check_address("127.0.0.2", "localhost")  # only what was listed
    admins.clear()
    with pytest.raises(Refused):
        policy.check_address("127.0.0.1", "localhost")
