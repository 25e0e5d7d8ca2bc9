"""CONTRACT §2 Authorization: every kind of token against every user-data API, through the real gateway.

A refused request answers the JSON error shape with 401 (not an access token, expired, bad type) or 403
(a valid token without the scope, or an app outside its grants), and writes nothing.
"""

from __future__ import annotations

import json
import time

import pytest

from functions.sso.provider import OpenIDProvider
from functions.sso.service import BACKCHANNEL_EVENT, SsoService
from runtime.ids import new_id
from runtime.mongo import database_name
from runtime.tokens import issue_access_token, issue_invocation_token

SIBLING = "reader"
FILES_SIBLING = "files-reader"

# (name, method, path, body, scope it needs)
CALLS = [
    ("files-read", "GET", "/files/v1/root", None, "files.read"),
    ("files-write", "POST", "/files/v1/folders", {"parent_id": "ROOT", "name": "x"}, "files.write"),
    ("pairing-read", "GET", "/pairing/v1/sessions/nope", None, "pairing"),
    ("pairing-write", "POST", "/pairing/v1/sessions", {"serial": "NAS-NOPE"}, "pairing"),
    ("devices-read", "GET", "/devices/v1/devices", None, "devices"),
    ("devices-write", "DELETE", "/devices/v1/devices/nope", None, "devices"),
    ("mobile-read", "GET", "/mobile/v1/changes", None, "sync"),
    ("mobile-write", "POST", "/mobile/v1/devices", {"name": "Phone", "platform": "android"}, "sync"),
    ("events-read", "GET", "/events/v1", None, "graph.read"),
    ("search-read", "GET", "/search/v1?q=x", None, "search"),
]


@pytest.fixture
def env(env):
    env["PCLOUD_SSO_CLIENTS"] = json.dumps([
        {"client_id": SIBLING, "client_secret": "s", "redirect_uris": ["http://127.0.0.1:5999/cb"]},
        {"client_id": FILES_SIBLING, "client_secret": "s", "redirect_uris": ["http://127.0.0.1:5998/cb"],
         "scopes": "openid profile email files.read"},
    ])
    return env


def _tokens(clients, settings, user_id: str) -> dict:
    """Every kind of PCloud-signed JWT a client could present, each minted the way production mints it."""
    keys = clients.keys
    op = OpenIDProvider(SsoService(clients.db, settings), keys, settings)
    first_party, _ = issue_access_token(keys, settings, sub=user_id, aud="pcloud")
    sibling, _ = issue_access_token(keys, settings, sub=user_id, aud=SIBLING,
                                    scopes=settings.sso_client(SIBLING).scopes)
    files_sibling, _ = issue_access_token(keys, settings, sub=user_id, aud=FILES_SIBLING,
                                          scopes=settings.sso_client(FILES_SIBLING).scopes)
    id_token = op.id_token(SIBLING, user_id, "sid-1", sibling, "nonce", None)
    now = int(time.time())
    logout = keys.sign({"iss": settings.public_url, "aud": SIBLING, "iat": now, "exp": now + 120, "jti": new_id(),
                        "sub": user_id, "sid": "sid-1", "events": {BACKCHANNEL_EVENT: {}}}, {"typ": "logout+jwt"})
    base = {"iss": settings.public_url, "sub": user_id, "aud": "pcloud", "client_id": "pcloud",
            "scope": "files.read files.write devices pairing sync", "jti": new_id()}
    expired = keys.sign({**base, "iat": now - 2000, "nbf": now - 2000, "exp": now - 1000}, {"typ": "at+jwt"})
    wrong_typ = keys.sign({**base, "iat": now, "nbf": now, "exp": now + 300}, {"typ": "JWT"})
    app = issue_invocation_token(keys, settings, user_id=user_id, app="fake-app", scopes=["files.read"],
                                 grants={"actions": ["files.read"], "types": {"photos.Image": ["read"]}},
                                 execution_id=new_id(), depth=1, deadline=time.time() + 300)
    return {"first-party": first_party, "sibling": sibling, "sibling-files.read": files_sibling,
            "id-token": id_token, "logout-token": logout, "expired": expired, "wrong-typ": wrong_typ,
            "app-invocation": app}


def _expected(kind: str, scope: str) -> tuple[int, str | None] | None:
    """(status, error code) for a refusal, None when the gateway lets the call through."""
    if kind == "first-party":
        return None
    if kind in ("id-token", "logout-token", "wrong-typ"):
        return 401, "invalid_token"
    if kind == "expired":
        return 401, "token_expired"
    if kind == "sibling-files.read" and scope == "files.read":
        return None
    if kind == "app-invocation":
        return None if scope == "files.read" else (403, "not_granted")
    return 403, "insufficient_scope"


def _snapshot(clients, settings) -> dict:
    db = clients.mongo[database_name(settings.mongo_url)]
    return {name: db[name].count_documents({}) for name in db.list_collection_names()}


@pytest.mark.parametrize("kind", ["first-party", "sibling", "sibling-files.read", "id-token", "logout-token",
                                  "expired", "wrong-typ", "app-invocation"])
@pytest.mark.parametrize("call", CALLS, ids=[c[0] for c in CALLS])
def test_each_token_kind_against_each_function(client, clients, settings, make_user, kind, call):
    _, method, path, body, scope = call
    user = make_user()
    token = _tokens(clients, settings, user.id)[kind]
    if body and body.get("parent_id") == "ROOT":
        root = client.get("/files/v1/root", headers=user.headers).json
        body = {**body, "parent_id": root["id"]}
    before = _snapshot(clients, settings)
    resp = client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {token}"})
    expected = _expected(kind, scope)
    if expected is None:
        assert resp.status_code not in (401, 403), resp.json
        return
    status, code = expected
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["code"] == code
    if status == 403:
        assert resp.json["error"]["details"]["required"] == scope
    assert _snapshot(clients, settings) == before  # a refused request writes nothing


def test_sibling_with_files_read_reads_but_cannot_write(client, clients, settings, make_user):
    user = make_user()
    token = _tokens(clients, settings, user.id)["sibling-files.read"]
    headers = {"Authorization": f"Bearer {token}"}
    root = client.get("/files/v1/root", headers=headers)
    assert root.status_code == 200 and root.json["kind"] == "folder"
    made = client.post("/files/v1/folders", json={"parent_id": root.json["id"], "name": "nope"}, headers=headers)
    assert made.status_code == 403 and made.json["error"]["details"]["required"] == "files.write"
    assert client.get(f"/files/v1/nodes/{root.json['id']}/children", headers=user.headers).json["items"] == []


def test_scopes_reach_the_function_in_the_identity(client, clients, settings, make_user):
    """The app's identity (grants, execution, depth) reaches functions; they never parse the token."""
    user = make_user()
    token = _tokens(clients, settings, user.id)["app-invocation"]
    resp = client.get("/echo/v1/ping", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json["user_id"] == user.id
    assert resp.json["app"] == "fake-app" and resp.json["client_id"] == "app:fake-app"
    assert resp.json["scopes"] == ["files.read"] and resp.json["depth"] == 1 and resp.json["execution_id"]
    mine = client.get("/echo/v1/ping", headers=user.headers).json
    assert mine["app"] is None and "files.write" in mine["scopes"] and "admin" not in mine["scopes"]
