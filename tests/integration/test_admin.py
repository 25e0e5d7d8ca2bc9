"""Roles, the admin API and groups end to end (CONTRACT §2): real sign-ins through the gateway, real tokens."""

from __future__ import annotations

import pytest
import requests

from runtime import groups


def _phone(sso, email: str) -> dict:
    resp = requests.post(f"{sso.url}/mobile/v1/auth/google",
                         json={"id_token": sso.google.make_id_token(email)}, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _auth(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _refresh(sso, token: str) -> requests.Response:
    return requests.post(f"{sso.url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                        "client_id": "pcloud"}, timeout=20)


@pytest.fixture
def fresh_standing(gateway_app):
    """The gateway re-reads a caller's role and disabled flag every 30 s; tests look at once."""
    gateway_app.auth.status_ttl = 0
    return gateway_app


def test_first_user_is_admin_and_the_next_ones_are_members(sso, fresh_standing):
    admin, member = _phone(sso, "first@example.test"), _phone(sso, "second@example.test")
    info = requests.get(f"{sso.url}/auth/userinfo", headers=_auth(admin), timeout=10).json()
    assert info["role"] == "admin" and "admin" in admin["scope"].split()
    assert requests.get(f"{sso.url}/auth/userinfo", headers=_auth(member), timeout=10).json()["role"] == "member"
    assert "admin" not in member["scope"].split()
    listed = requests.get(f"{sso.url}/admin/v1/users", headers=_auth(admin), timeout=10)
    assert listed.status_code == 200
    assert {(u["email"], u["role"]) for u in listed.json()["items"]} == {("first@example.test", "admin"),
                                                                         ("second@example.test", "member")}
    refused = requests.get(f"{sso.url}/admin/v1/users", headers=_auth(member), timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    patch = requests.patch(f"{sso.url}/admin/v1/users/{admin['user']['id']}", json={"role": "member"},
                           headers=_auth(member), timeout=10)
    assert patch.status_code == 403
    assert sso.db.users.find_one({"_id": admin["user"]["id"]})["role"] == "admin"  # nothing written


def test_admin_emails_decide_when_set(env, sso_env, request):
    env["PCLOUD_ADMIN_EMAILS"] = "Boss@Example.test, other@example.test"
    sso = request.getfixturevalue("sso")
    first, boss = _phone(sso, "first@example.test"), _phone(sso, "boss@example.test")
    assert requests.get(f"{sso.url}/auth/userinfo", headers=_auth(first), timeout=10).json()["role"] == "member"
    assert requests.get(f"{sso.url}/auth/userinfo", headers=_auth(boss), timeout=10).json()["role"] == "admin"
    assert requests.get(f"{sso.url}/admin/v1/users", headers=_auth(boss), timeout=10).status_code == 200


def test_promotion_and_demotion_take_effect(sso, fresh_standing):
    admin, member = _phone(sso, "first@example.test"), _phone(sso, "second@example.test")
    mid = member["user"]["id"]
    promoted = requests.patch(f"{sso.url}/admin/v1/users/{mid}", json={"role": "admin"}, headers=_auth(admin),
                              timeout=10)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    # the member's next token (after a refresh) carries the admin scope
    member = _refresh(sso, member["refresh_token"]).json()
    assert "admin" in member["scope"].split()
    assert requests.get(f"{sso.url}/admin/v1/users", headers=_auth(member), timeout=10).status_code == 200
    # demoting the first admin: their still-valid token loses admin at the gateway
    demoted = requests.patch(f"{sso.url}/admin/v1/users/{admin['user']['id']}", json={"role": "member"},
                             headers=_auth(member), timeout=10)
    assert demoted.status_code == 200 and demoted.json()["role"] == "member"
    gone = requests.get(f"{sso.url}/admin/v1/users", headers=_auth(admin), timeout=10)
    assert gone.status_code == 403 and gone.json()["error"]["code"] == "forbidden"


def test_the_last_admin_cannot_demote_or_disable_themselves(sso, fresh_standing):
    admin = _phone(sso, "first@example.test")
    aid = admin["user"]["id"]
    for change in ({"role": "member"}, {"disabled": True}, {"role": "member", "disabled": True}):
        resp = requests.patch(f"{sso.url}/admin/v1/users/{aid}", json=change, headers=_auth(admin), timeout=10)
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "last_admin"
    doc = sso.db.users.find_one({"_id": aid})
    assert doc["role"] == "admin" and not doc.get("disabled")
    bad = requests.patch(f"{sso.url}/admin/v1/users/{aid}", json={"role": "owner"}, headers=_auth(admin), timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_role"
    missing = requests.patch(f"{sso.url}/admin/v1/users/nobody", json={"role": "admin"}, headers=_auth(admin),
                             timeout=10)
    assert missing.status_code == 404


def test_a_disabled_user_is_locked_out(sso, fresh_standing):
    admin, member = _phone(sso, "first@example.test"), _phone(sso, "second@example.test")
    assert requests.get(f"{sso.url}/files/v1/root", headers=_auth(member), timeout=10).status_code == 200
    resp = requests.patch(f"{sso.url}/admin/v1/users/{member['user']['id']}", json={"disabled": True},
                          headers=_auth(admin), timeout=10)
    assert resp.status_code == 200 and resp.json()["disabled"] is True
    # the access token still alive is refused, its refresh token is revoked, and signing in again is refused
    locked = requests.get(f"{sso.url}/files/v1/root", headers=_auth(member), timeout=10)
    assert locked.status_code == 401 and locked.json()["error"]["code"] == "invalid_token"
    assert _refresh(sso, member["refresh_token"]).json()["error"] == "invalid_grant"
    again = requests.post(f"{sso.url}/mobile/v1/auth/google",
                          json={"id_token": sso.google.make_id_token("second@example.test")}, timeout=20)
    assert again.status_code == 401
    assert requests.get(f"{sso.url}/auth/userinfo", headers=_auth(member), timeout=10).status_code == 401
    enabled = requests.patch(f"{sso.url}/admin/v1/users/{member['user']['id']}", json={"disabled": False},
                             headers=_auth(admin), timeout=10)
    assert enabled.json()["disabled"] is False
    assert requests.get(f"{sso.url}/files/v1/root", headers=_auth(_phone(sso, "second@example.test")),
                        timeout=10).status_code == 200


def test_groups_are_managed_by_admins_and_visible_to_services(sso, fresh_standing):
    admin, member, third = (_phone(sso, f"{n}@example.test") for n in ("first", "second", "third"))
    made = requests.post(f"{sso.url}/admin/v1/groups", json={"name": "family", "members": [member["user"]["id"]]},
                         headers=_auth(admin), timeout=10)
    assert made.status_code == 201, made.text
    group = made.json()
    assert group["name"] == "family" and group["members"] == [member["user"]["id"]]
    dup = requests.post(f"{sso.url}/admin/v1/groups", json={"name": "FAMILY"}, headers=_auth(admin), timeout=10)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "name_taken"
    unknown = requests.post(f"{sso.url}/admin/v1/groups/{group['id']}/members", json={"user_id": "nobody"},
                            headers=_auth(admin), timeout=10)
    assert unknown.status_code == 404
    added = requests.post(f"{sso.url}/admin/v1/groups/{group['id']}/members", json={"user_id": third["user"]["id"]},
                          headers=_auth(admin), timeout=10)
    assert added.status_code == 200 and set(added.json()["members"]) == {member["user"]["id"], third["user"]["id"]}
    assert groups.group_ids_for(sso.db, third["user"]["id"]) == [group["id"]]
    users = {u["id"]: u for u in requests.get(f"{sso.url}/admin/v1/users", headers=_auth(admin),
                                              timeout=10).json()["items"]}
    assert users[third["user"]["id"]]["groups"] == [group["id"]] and users[admin["user"]["id"]]["groups"] == []
    removed = requests.delete(f"{sso.url}/admin/v1/groups/{group['id']}/members/{member['user']['id']}",
                              headers=_auth(admin), timeout=10)
    assert removed.json()["members"] == [third["user"]["id"]]
    assert groups.group_ids_for(sso.db, member["user"]["id"]) == []
    assert requests.get(f"{sso.url}/admin/v1/groups", headers=_auth(member), timeout=10).status_code == 403
    listed = requests.get(f"{sso.url}/admin/v1/groups", headers=_auth(admin), timeout=10).json()["items"]
    assert [g["name"] for g in listed] == ["family"]
    assert requests.delete(f"{sso.url}/admin/v1/groups/{group['id']}", headers=_auth(admin),
                           timeout=10).status_code == 204
    assert requests.get(f"{sso.url}/admin/v1/groups/{group['id']}", headers=_auth(admin),
                        timeout=10).status_code == 404
    assert groups.group_ids_for(sso.db, third["user"]["id"]) == []


def test_two_admins_demoting_each_other_at_once_leave_one_admin(sso, fresh_standing):
    """The last-admin rule holds under a race: both transactions write one guard document, so they conflict
    instead of each seeing the other still admin."""
    import threading

    _phone(sso, "first@example.test")  # the first user (admin), demoted below
    for round_ in range(3):
        a, b = _phone(sso, f"a{round_}@example.test"), _phone(sso, f"b{round_}@example.test")
        sso.db.users.update_many({}, {"$set": {"role": "member"}})
        sso.db.users.update_many({"_id": {"$in": [a["user"]["id"], b["user"]["id"]]}}, {"$set": {"role": "admin"}})
        a, b = {**_refresh(sso, a["refresh_token"]).json(), "user": a["user"]}, \
            {**_refresh(sso, b["refresh_token"]).json(), "user": b["user"]}
        barrier = threading.Barrier(2)
        answers: list[requests.Response] = []

        def demote(actor, target, barrier=barrier, answers=answers):
            barrier.wait()
            answers.append(requests.patch(f"{sso.url}/admin/v1/users/{target}", json={"role": "member"},
                                          headers=_auth(actor), timeout=30))

        threads = [threading.Thread(target=demote, args=(a, b["user"]["id"])),
                   threading.Thread(target=demote, args=(b, a["user"]["id"]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = sorted(r.status_code for r in answers)
        assert codes in ([200, 403], [200, 409]), [r.text for r in answers]  # never both
        assert sso.db.users.count_documents({"role": "admin", "disabled": {"$ne": True}}) == 1
