"""Revocation (CONTRACT §2): POST /auth/revoke, refresh families bound to the phone that registered with
them, and the rotation race (a concurrent reuse revokes the token a parallel rotation just issued)."""

from __future__ import annotations

import threading

import requests

from tests.fixtures.sso import READER, READER_SECRET


def _phone(sso, email: str = "lin@example.test") -> dict:
    resp = requests.post(f"{sso.url}/mobile/v1/auth/google",
                         json={"id_token": sso.google.make_id_token(email)}, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _refresh(sso, token: str) -> requests.Response:
    return requests.post(f"{sso.url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                        "client_id": "pcloud"}, timeout=20)


def _revoke(sso, data: dict, auth=None) -> requests.Response:
    return requests.post(f"{sso.url}/auth/revoke", data=data, auth=auth, timeout=10)


def test_revoking_a_refresh_token_ends_its_whole_family(sso):
    first = _phone(sso)
    rotated = _refresh(sso, first["refresh_token"]).json()
    resp = _revoke(sso, {"token": first["refresh_token"], "client_id": "pcloud"})  # an old one of the family
    assert resp.status_code == 200 and resp.json() == {}
    assert resp.headers["Cache-Control"] == "no-store"
    again = _refresh(sso, rotated["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    other = _phone(sso)  # another sign-in of the same user is another family, untouched
    assert _refresh(sso, other["refresh_token"]).status_code == 200


def test_revoke_answers_200_for_unknown_foreign_and_repeated_tokens(sso):
    phone = _phone(sso)
    for token in ("nonsense", "a.b.c", phone["access_token"] + "x"):
        assert _revoke(sso, {"token": token, "client_id": "pcloud"}).status_code == 200
    # a sibling cannot revoke the phone's refresh token (it is not its token): 200, nothing revoked
    assert _revoke(sso, {"token": phone["refresh_token"]}, auth=(READER, READER_SECRET)).status_code == 200
    assert _refresh(sso, phone["refresh_token"]).status_code == 200
    bad_client = _revoke(sso, {"token": phone["refresh_token"]}, auth=(READER, "wrong"))
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    assert _revoke(sso, {"client_id": "pcloud"}).json()["error"] == "invalid_request"


def test_revoking_a_phone_access_token_signs_that_phone_out(sso):
    phone = _phone(sso)
    assert _revoke(sso, {"token": phone["access_token"], "client_id": "pcloud"}).status_code == 200
    assert _refresh(sso, phone["refresh_token"]).json()["error"] == "invalid_grant"


def test_sibling_revokes_its_refresh_token(sso):
    code, verifier = sso.code_for(sso.signed_in_browser())
    tokens = sso.exchange(code, verifier).json()
    assert _revoke(sso, {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
                   auth=(READER, READER_SECRET)).status_code == 200
    resp = sso.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_deleting_the_phone_revokes_the_family_it_registered_with(sso):
    phone = _phone(sso)
    other = _phone(sso)  # the same user on a second phone
    headers = {"Authorization": f"Bearer {phone['access_token']}"}
    made = requests.post(f"{sso.url}/mobile/v1/devices", json={"name": "Pixel", "platform": "android"},
                         headers=headers, timeout=10)
    assert made.status_code == 201, made.text
    device_id = made.json()["device_id"]
    rotated = _refresh(sso, phone["refresh_token"]).json()  # the binding survives rotation
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    gone = requests.delete(f"{sso.url}/devices/v1/devices/{device_id}", headers=other_headers, timeout=10)
    assert gone.status_code == 204, gone.text
    assert _refresh(sso, rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert _refresh(sso, other["refresh_token"]).status_code == 200  # the other phone stays signed in
    family = sso.db.sso_refresh_families.find_one({"device_id": device_id})
    assert family["revoked"] and family["revoked_reason"] == "device_deleted"


def test_another_users_device_delete_revokes_nothing(sso):
    phone = _phone(sso, "lin@example.test")
    intruder = _phone(sso, "eve@example.test")
    headers = {"Authorization": f"Bearer {phone['access_token']}"}
    device_id = requests.post(f"{sso.url}/mobile/v1/devices", json={"name": "Pixel", "platform": "android"},
                              headers=headers, timeout=10).json()["device_id"]
    resp = requests.delete(f"{sso.url}/devices/v1/devices/{device_id}",
                           headers={"Authorization": f"Bearer {intruder['access_token']}"}, timeout=10)
    assert resp.status_code == 404
    assert _refresh(sso, phone["refresh_token"]).status_code == 200


def test_concurrent_reuse_revokes_the_token_the_winner_got(sso):
    """Eight threads present the same refresh token at once: at most one rotation wins, and whatever it
    issued is revoked too, because the others' reuse revokes the family inside the same race."""
    for _ in range(3):
        phone = _phone(sso)
        barrier = threading.Barrier(8)
        results: list[requests.Response] = []
        lock = threading.Lock()

        def use(token=phone["refresh_token"], barrier=barrier, lock=lock, results=results):
            barrier.wait()
            resp = _refresh(sso, token)
            with lock:
                results.append(resp)

        threads = [threading.Thread(target=use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        winners = [r.json() for r in results if r.status_code == 200]
        assert len(results) == 8 and len(winners) <= 1
        assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
        for won in winners:
            late = _refresh(sso, won["refresh_token"])
            assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
        live = sso.db.sso_refresh_tokens.count_documents({"family": {"$in": [
            t["family"] for t in sso.db.sso_refresh_tokens.find({"used_at": {"$ne": None}})]}, "revoked": False})
        assert live == 0  # no token of a reused family is left alive
