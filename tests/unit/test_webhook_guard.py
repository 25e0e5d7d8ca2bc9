"""Webhook signatures (a receiver verifies) and the SSRF guard (refusals, the admin allowance, no redirects,
no DNS rebinding), against a real receiver on 127.0.0.1 — no database needed."""

from __future__ import annotations

import time

import pytest

from functions.notify import signing
from functions.notify.netguard import AddressPolicy, Refused, SafeHttpSender, SystemResolver, check_url
from tests.fakes.webhook_receiver import StaticResolver, WebhookReceiver

LOOPBACK_ALLOWED = AddressPolicy(allow_nets=(__import__("ipaddress").ip_network("127.0.0.1/32"),))


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


def test_a_receiver_verifies_the_signature_and_refuses_tampering_replay_and_the_wrong_secret():
    secret, body = signing.new_secret(), b'{"type":"devices.device.offline"}'
    now = int(time.time())
    header = signing.header_value([secret], body, now)
    assert header.startswith(f"t={now},v1=")
    assert signing.verify(header, body, secret)
    assert not signing.verify(header, body + b" ", secret)  # body changed
    assert not signing.verify(header, body, signing.new_secret())  # someone else's secret
    stale = signing.header_value([secret], body, now - 301)
    assert not signing.verify(stale, body, secret)  # replayed after the 5-minute tolerance
    assert signing.verify(stale, body, secret, tolerance=600)
    assert not signing.verify("", body, secret) and not signing.verify("t=1", body, secret)


def test_during_rotation_both_secrets_sign():
    old, new, body = signing.new_secret(), signing.new_secret(), b"{}"
    header = signing.header_value([new, old], body)
    assert header.count("v1=") == 2
    assert signing.verify(header, body, old) and signing.verify(header, body, new)


@pytest.mark.parametrize("url,reason", [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.1.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "link_local"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://100.64.0.1/hook", "non_global"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://localhost:8000/hook", "loopback"),  # a host name resolving to loopback (the system resolver)
])
def test_non_public_addresses_are_refused(url, reason):
    with pytest.raises(Refused) as err:
        check_url(url, AddressPolicy(), SystemResolver())
    assert err.value.code == "url_not_allowed"
    assert err.value.details["reason"] == reason


def test_a_name_with_one_public_and_one_inner_address_is_refused():
    resolver = StaticResolver({"mixed.example": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(Refused) as err:
        check_url("https://mixed.example/h", AddressPolicy(), resolver)
    assert err.value.details["address"] == "10.0.0.5"


def test_bad_urls_are_refused_with_their_own_code():
    for url in ("ftp://example.com/", "http:///nohost", "https://user:pw@example.com/", "not a url", "",
                "https://example.com/#frag", "http://example.com:99999/"):
        with pytest.raises(Refused) as err:
            check_url(url, AddressPolicy(), StaticResolver({"example.com": ["93.184.216.34"]}))
        assert err.value.code == "invalid_url", url
    with pytest.raises(Refused) as err:
        check_url("https://nowhere.example/", AddressPolicy(), StaticResolver({}))
    assert err.value.code == "url_unresolvable"


def test_the_box_itself_is_refused_by_name_unless_allowed():
    policy = AddressPolicy(own_hosts=("pcloud.example",))
    with pytest.raises(Refused) as err:
        check_url("https://pcloud.example/hook", policy, StaticResolver({"pcloud.example": ["93.184.216.34"]}))
    assert err.value.details["reason"] == "this_server"


def test_an_admin_allowance_lets_the_local_receiver_through(receiver):
    receiver.secret = signing.new_secret()
    sender = SafeHttpSender(LOOPBACK_ALLOWED, SystemResolver(), timeout=5)
    body = b'{"hello":"world"}'
    answer = sender.post(receiver.url + "/hook?x=1",
                         body, {signing.HEADER: signing.header_value([receiver.secret], body)})
    assert answer.ok and answer.status == 200
    assert receiver.arrivals[0].verified is True and receiver.arrivals[0].path == "/hook?x=1"
    # without the allowance nothing is sent at all
    with pytest.raises(Refused):
        SafeHttpSender(AddressPolicy(), SystemResolver(), timeout=5).post(receiver.url, body, {})
    assert receiver.count() == 1
    sender.close()


def test_dns_rebinding_cannot_reach_loopback(receiver):
    """Checked public at creation, loopback at delivery: the delivery checks again and connects to the checked
    address, so nothing reaches the receiver."""
    port = receiver.server.server_port
    resolver = StaticResolver({"rebind.example": ["93.184.216.34"]})
    check_url(f"http://rebind.example:{port}/", AddressPolicy(), resolver)  # what the API saw
    resolver.answers["rebind.example"] = ["127.0.0.1"]
    with pytest.raises(Refused) as err:
        SafeHttpSender(AddressPolicy(), resolver, timeout=2).post(f"http://rebind.example:{port}/", b"{}", {})
    assert err.value.details == {"host": "rebind.example", "address": "127.0.0.1", "reason": "loopback"}
    assert receiver.count() == 0


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(receiver):
    """An allowed name's delivery connects to the address it resolved to and says Host: <name>:<port>."""
    resolver = StaticResolver({"hooks.example": ["127.0.0.1"]})
    port = receiver.server.server_port
    answer = SafeHttpSender(LOOPBACK_ALLOWED, resolver, timeout=5).post(f"http://hooks.example:{port}/in", b"{}", {})
    assert answer.ok
    assert receiver.arrivals[0].headers["Host"] == f"hooks.example:{port}"


def test_redirects_are_not_followed(receiver):
    receiver.script = [302]
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data"
    answer = SafeHttpSender(LOOPBACK_ALLOWED, SystemResolver(), timeout=5).post(receiver.url, b"{}", {})
    assert answer.status == 302 and not answer.ok
    assert "not followed" in answer.error
    assert receiver.count() == 1


def test_a_silent_receiver_costs_one_timeout_not_a_hang():
    import socket

    with socket.socket() as silent:  # accepts (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        answer = SafeHttpSender(LOOPBACK_ALLOWED, SystemResolver(), timeout=0.5).post(url, b"{}", {})
    assert answer.status is None and "Timeout" in answer.error
