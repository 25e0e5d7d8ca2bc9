"""The tagger against a stand-in of PCloud's public HTTP API (discovery, JWKS, GraphQL) over real HTTP."""

from __future__ import annotations

import json
import threading
import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from tagger_app.web import create_app, label_for
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})


class StandIn:
    """Discovery, JWKS and a GraphQL endpoint that answers like PCloud: reads ok, a write to the Note FORBIDDEN."""

    def __init__(self):
        self.queries = []
        self.server = make_server("127.0.0.1", 0, self)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        req = Request(environ)
        if req.path == "/.well-known/openid-configuration":
            body = {"issuer": self.url, "jwks_uri": f"{self.url}/auth/jwks.json"}
        elif req.path == "/auth/jwks.json":
            body = {"keys": [KEY.as_dict(private=False)]}
        else:
            query = json.loads(req.get_data())
            self.queries.append((req.headers.get("Authorization"), query))
            if "node(id" in query["query"]:
                body = {"data": {"node": {"id": "n1", "type": "notes.Note", "data": {"title": "Groceries for Sunday"}}}}
            elif "createNode" in query["query"]:
                body = {"data": {"createNode": {"id": "t1", "data": query["variables"]["data"]}}}
            else:
                body = {"data": None, "errors": [{"message": "no write grant", "extensions": {"code": "FORBIDDEN"}}]}
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)


@pytest.fixture
def pcloud():
    stand_in = StandIn()
    yield stand_in
    stand_in.server.shutdown()


def token(issuer: str, **over) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": "u1", "aud": "pcloud", "client_id": "app:tagger", "azp": "tagger",
              "scope": "graph.read graph.write apps", "execution_id": "e1", "exp": now + 60, "iat": now, "nbf": now,
              "grants": {"types": {"notes.Note": ["read"]}}, "depth": 0, **over}
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, claims, KEY)


def call(client, pcloud, tok, execution_id="e1"):
    body = {"execution_id": execution_id, "action": "tag", "params": {"node_id": "n1"},
            "user": {"id": "u1", "name": "U", "email": "u@x"}, "settings": {"prefix": "#", "enabled": True},
            "api_url": pcloud.url}
    return client.post("/actions/tag", json=body,
                       headers={"Authorization": f"Bearer {tok}", "Idempotency-Key": execution_id})


def test_tags_in_its_namespace_and_is_refused_the_note(monkeypatch, pcloud):
    monkeypatch.setenv("PCLOUD_API_URL", pcloud.url)
    client = create_app().test_client()
    tok = token(pcloud.url)
    resp = call(client, pcloud, tok)
    assert resp.status_code == 200
    assert resp.json == {"tag_id": "t1", "label": "#groceries", "write_refused": "FORBIDDEN"}
    assert [q["variables"] for _, q in pcloud.queries] == [{"id": "n1"}, {"data": {"label": "#groceries",
                                                                                 "target": "n1"}}, {"id": "n1"}]
    assert {auth for auth, _ in pcloud.queries} == {f"Bearer {tok}"}  # every call with the invocation token
    again = call(client, pcloud, tok)  # redelivery: same answer, no new writes
    assert again.json == resp.json and len(pcloud.queries) == 3


@pytest.mark.parametrize("over", [{"azp": "other", "client_id": "app:other"}, {"exp": int(time.time()) - 5},
                                  {"iss": "http://evil"}, {"aud": "sibling"}, {"execution_id": "e2"}])
def test_invocations_that_are_not_ours_are_401(monkeypatch, pcloud, over):
    monkeypatch.setenv("PCLOUD_API_URL", pcloud.url)
    client = create_app().test_client()
    assert call(client, pcloud, token(pcloud.url, **over)).status_code == 401
    assert pcloud.queries == []


def test_label():
    assert label_for("  Hello world", "#") == "#hello"
    assert label_for("", "@") == "@untitled"
