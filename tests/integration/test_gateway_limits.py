"""One user cannot take the API down (CONTRACT §1/§4): long-polls capped per user, requests counted before
authentication (bad tokens are limited too), and anonymous limits keyed on the real client behind a proxy."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from werkzeug.test import Client

from tests.fixtures.pairing import pairing_env_for, unique_serial, wait_until


def _gateway(env, **extra):
    from gateway.wsgi import create_gateway
    from runtime.settings import load_settings

    env.update(extra)
    return create_gateway(load_settings(env))


class TestLongPolls:
    @pytest.fixture
    def env(self, env):
        # the device never answers: a poll with since=start waits its whole `wait`
        return pairing_env_for(env, env["PCLOUD_AMQP_URL"], ack=60, confirm=120)

    def test_forty_polls_from_one_user_leave_the_api_to_everyone_else(self, gateway, clients, make_user, listener,
                                                                      raw_device, settings):
        serial = unique_serial("LP")
        raw_device(serial).send("hello", model="M", firmware="1")
        wait_until(lambda: clients.db.devices.find_one({"kind": "nas", "serial": serial}), what="hello")
        greedy, other = make_user(), make_user()
        started = requests.post(f"{gateway.url}/pairing/v1/sessions", json={"serial": serial},
                                headers=greedy.headers, timeout=10)
        assert started.status_code == 201, started.text
        url = f"{gateway.url}/pairing/v1/sessions/{started.json()['session_id']}?wait=6&since=start"
        answers: list[requests.Response] = []
        lock = threading.Lock()
        barrier = threading.Barrier(40)

        def poll():
            barrier.wait()
            resp = requests.get(url, headers=greedy.headers, timeout=30)
            with lock:
                answers.append(resp)

        threads = [threading.Thread(target=poll) for _ in range(40)]
        for t in threads:
            t.start()
        wait_until(lambda: len(answers) >= 40 - settings.long_polls_per_user, timeout=20, what="refusals")
        latencies = []
        for _ in range(5):  # meanwhile another user's requests are answered at once
            t0 = time.monotonic()
            resp = requests.get(f"{gateway.url}/files/v1/root", headers=other.headers, timeout=10)
            latencies.append(time.monotonic() - t0)
            assert resp.status_code == 200
        for t in threads:
            t.join(30)
        refused = [r for r in answers if r.status_code == 429]
        held = [r for r in answers if r.status_code == 200]
        assert len(answers) == 40
        assert len(held) == settings.long_polls_per_user and len(refused) == 40 - settings.long_polls_per_user
        assert all(r.json()["status"] == "start" for r in held)
        assert all(r.json()["error"]["code"] == "too_many_long_polls" and r.headers["Retry-After"] for r in refused)
        assert max(latencies) < 1.0, latencies  # the bound: < 1 s while the polls hang
        # the slots are given back when the polls end
        again = requests.get(url.replace("wait=6", "wait=0.2"), headers=greedy.headers, timeout=10)
        assert again.status_code == 200


def test_bad_tokens_are_rate_limited_before_authentication(env):
    c = Client(_gateway(env, PCLOUD_RATE_LIMIT_PER_MINUTE="5"))
    codes = [c.get("/files/v1/root", headers={"Authorization": "Bearer bad.to.ken"}).status_code for _ in range(7)]
    assert codes == [401] * 5 + [429, 429]


def test_a_known_token_counts_for_its_user_not_the_address(env, make_user):
    c = Client(_gateway(env, PCLOUD_RATE_LIMIT_PER_MINUTE="5"))
    user = make_user()
    c.get("/echo/v1/ping", headers=user.headers)  # verified once (counted for the address)
    for _ in range(3):
        assert c.get("/echo/v1/ping").status_code == 200  # anonymous: the address has room left
    codes = [c.get("/echo/v1/ping", headers=user.headers).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


def _anonymous_codes(c: Client, forwarded: str, remote: str = "127.0.0.1", n: int = 3) -> list[int]:
    return [c.get("/echo/v1/ping", headers={"X-Forwarded-For": forwarded},
                  environ_base={"REMOTE_ADDR": remote}).status_code for _ in range(n)]


def test_without_trusted_proxies_x_forwarded_for_is_ignored(env):
    c = Client(_gateway(env, PCLOUD_RATE_LIMIT_PER_MINUTE="3"))
    assert _anonymous_codes(c, "203.0.113.1") == [200, 200, 200]
    assert _anonymous_codes(c, "203.0.113.2", n=1) == [429]  # the same peer, whatever it claims


def test_a_trusted_proxy_hop_count_keys_anonymous_limits_on_the_client(env):
    c = Client(_gateway(env, PCLOUD_RATE_LIMIT_PER_MINUTE="3", PCLOUD_TRUSTED_PROXIES="1"))
    assert _anonymous_codes(c, "203.0.113.1") == [200, 200, 200]
    assert _anonymous_codes(c, "203.0.113.1", n=1) == [429]
    assert _anonymous_codes(c, "203.0.113.2") == [200, 200, 200]  # another client behind the same proxy


def test_a_trusted_proxy_list_believes_only_those_peers(env):
    c = Client(_gateway(env, PCLOUD_RATE_LIMIT_PER_MINUTE="3", PCLOUD_TRUSTED_PROXIES="10.0.0.0/8"))
    assert _anonymous_codes(c, "203.0.113.1", remote="10.1.2.3") == [200, 200, 200]
    assert _anonymous_codes(c, "203.0.113.2", remote="10.1.2.3") == [200, 200, 200]
    # a direct client cannot choose its bucket by sending the header
    assert _anonymous_codes(c, "198.51.100.1", remote="192.0.2.9") == [200, 200, 200]
    assert _anonymous_codes(c, "198.51.100.2", remote="192.0.2.9", n=1) == [429]
