"""The FCM stand-in refuses what Google refuses, so a test passing against it means something."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.fakes.fcm import JWT_BEARER, FakeFCM


def grant(fake: FakeFCM, key, email: str) -> requests.Response:
    now = int(time.time())
    assertion = jwt.encode({"iss": email, "scope": "https://www.googleapis.com/auth/firebase.messaging",
                            "aud": fake.token_uri, "iat": now, "exp": now + 600}, key, algorithm="RS256")
    return requests.post(fake.token_uri, data={"grant_type": JWT_BEARER, "assertion": assertion}, timeout=5)


def test_token_endpoint_checks_the_signature(fcm_fake, fcm_service_account):
    info = json.loads(fcm_service_account.read_text())
    good = load_pem_private_key(info["private_key"].encode(), None)
    resp = grant(fcm_fake, good, info["client_email"])
    assert resp.status_code == 200 and resp.json()["access_token"]
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resp = grant(fcm_fake, forged, info["client_email"])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_send_needs_an_issued_bearer_token_and_a_valid_message(fcm_fake, fcm_service_account):
    url = f"{fcm_fake.url}/v1/projects/{fcm_fake.project_id}/messages:send"
    body = {"message": {"token": "t", "data": {"type": "sync"}}}
    resp = requests.post(url, json=body, timeout=5)
    assert resp.status_code == 401 and resp.json()["error"]["status"] == "UNAUTHENTICATED"

    info = json.loads(fcm_service_account.read_text())
    access = grant(fcm_fake, load_pem_private_key(info["private_key"].encode(), None),
                   info["client_email"]).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    assert requests.post(url, json=body, headers=headers, timeout=5).status_code == 200
    too_big = {"message": {"token": "t", "data": {"blob": "x" * 5000}}}
    resp = requests.post(url, json=too_big, headers=headers, timeout=5)
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    two_targets = {"message": {"token": "t", "topic": "news"}}
    assert requests.post(url, json=two_targets, headers=headers, timeout=5).status_code == 400
    assert fcm_fake.stats()["sent"] == 1


def test_runs_as_a_process(tmp_path):
    sa = tmp_path / "sa.json"
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fcm", "--port", "0", "--service-account", str(sa)],
                            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE)
    try:
        info = json.loads(proc.stdout.readline())
        assert json.loads(sa.read_text())["token_uri"] == info["token_uri"]
        assert requests.get(f"{info['url']}/_fake/stats", timeout=5).json()["sent"] == 0
        resp = requests.post(f"{info['url']}/_fake/behaviour", json={"token": "t", "error": "UNREGISTERED"}, timeout=5)
        assert resp.status_code == 204
    finally:
        proc.kill()
        proc.wait(timeout=10)
