"""A local stand-in for Google's OpenID Connect service, speaking the real protocol so Authlib runs end to end.

Endpoints: discovery (`/.well-known/openid-configuration`), authorize (`/o/oauth2/v2/auth`: a sign-in form
where the person types an email and name, auto-approving; "Cancel" answers `access_denied`), token
(`/token`: authorization_code with client authentication and PKCE checked), JWKS (`/oauth2/v3/certs`) and
userinfo. ID tokens are RS256-signed with a local key generated at start.

In-process (tests): `fake = FakeGoogle(client_id="web", client_secret="s").start()`; `fake.make_id_token(...)`
mints tokens for the phone exchange, including broken ones (`sign="foreign"|"none"|"hs256-public"`);
`fake.next_id_token_claims` alters the next ID token the token endpoint hands out.
As a process (demo sign-in for `make run`): `python -m devtools.google --port 8910`; any client id/secret
is accepted unless `--client-id/--client-secret` are given.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from html import escape
from urllib.parse import urlencode, urlsplit

from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey

from devtools.serve import ServedApp

_KEYS: list[RSAKey] = []
_KEYS_LOCK = threading.Lock()


def _shared_keys() -> tuple[RSAKey, RSAKey]:
    """Two RSA keys per process (generation is slow): the published one and a foreign one for bad tokens."""
    with _KEYS_LOCK:
        while len(_KEYS) < 2:
            key = RSAKey.generate_key(2048, private=True)
            key.ensure_kid()
            _KEYS.append(key)
        return _KEYS[0], _KEYS[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def subject_for(email: str) -> str:
    """A stable numeric-looking Google subject per email, as Google's are stable per account."""
    return str(int(hashlib.sha256(email.lower().encode()).hexdigest()[:15], 16))


class FakeGoogle(ServedApp):
    def __init__(self, client_id: str | None = None, client_secret: str | None = None):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key, self.foreign_key = _shared_keys()
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        self.next_id_token_claims: dict = {}
        self.next_sign: str = "ok"
        self.token_requests: list[dict] = []
        self.lock = threading.Lock()
        self.app = self._build_app()
        self._server = None
        self.url = ""

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self.url

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    # --- tokens ---------------------------------------------------------------------------------
    def make_id_token(self, email: str = "someone@example.test", aud: str | None = None, *, name: str | None = None,
                      email_verified: bool = True, nonce: str | None = None, sub: str | None = None,
                      expires_in: int = 3600, sign: str = "ok", drop: tuple = (), **overrides) -> str:
        now = int(time.time())
        aud = aud or self.client_id or "client"
        claims = {"iss": self.issuer, "azp": aud, "aud": aud,
                  "sub": sub or subject_for(email), "email": email, "email_verified": email_verified,
                  "name": name or email.split("@")[0].title(), "iat": now, "exp": now + expires_in}
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None and k not in drop}
        return self.sign(claims, sign)

    def sign(self, claims: dict, how: str = "ok") -> str:
        if how == "ok":
            return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key)
        if how == "foreign":  # a key nobody published, under the published kid
            return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.foreign_key)
        payload = _b64(json.dumps(claims).encode())
        if how == "none":
            return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."
        if how == "hs256-public":  # the classic confusion attack: HMAC keyed with the public key's PEM
            header = _b64(json.dumps({"alg": "HS256", "kid": self.key.kid, "typ": "JWT"}).encode())
            pem = self.key.as_pem(private=False)
            sig = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            return f"{header}.{payload}.{_b64(sig)}"
        raise ValueError(f"unknown signing mode {how!r}")

    def jwks(self) -> dict:
        return {"keys": [{**self.key.as_dict(private=False), "kid": self.key.kid, "use": "sig", "alg": "RS256"}]}

    # --- the app --------------------------------------------------------------------------------
    def _client_ok(self, client_id: str | None, secret: str | None = None, check_secret: bool = False) -> bool:
        if not client_id:
            return False
        if self.client_id is not None and client_id != self.client_id:
            return False
        if check_secret and self.client_secret is not None and secret != self.client_secret:
            return False
        return True

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        fake = self

        def oauth_error(error: str, description: str, status: int = 400):
            resp = jsonify({"error": error, "error_description": description})
            resp.status_code = status
            return resp

        @app.get("/.well-known/openid-configuration")
        def discovery():
            base = fake.url
            return jsonify({
                "issuer": fake.issuer, "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
                "token_endpoint": f"{base}/token", "userinfo_endpoint": f"{base}/v1/userinfo",
                "jwks_uri": f"{base}/oauth2/v3/certs", "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"]})

        @app.get("/oauth2/v3/certs")
        def certs():
            return jsonify(fake.jwks())

        @app.get("/o/oauth2/v2/auth")
        def authorize_form():
            args = request.args
            if not fake._client_ok(args.get("client_id")):
                return "Error 401: invalid_client — The OAuth client was not found.", 401
            if args.get("response_type") != "code" or not args.get("redirect_uri"):
                return "Error 400: invalid_request — response_type=code and redirect_uri are required.", 400
            hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                             for k, v in args.items())
            hint = escape(args.get("login_hint", ""))
            return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sign in – Google (local stand-in)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:10vh auto}}label{{display:block;margin:.8rem 0}}
input[type=text],input[type=email]{{width:100%;padding:.5rem}}button{{padding:.6rem 1.2rem;margin-right:.5rem}}</style>
</head><body><h1>Sign in</h1><p>Local stand-in for Google: type any email and name; it is approved at once.</p>
<form method="post" action="/o/oauth2/v2/auth">{hidden}
<label>Email <input type="email" name="email" required value="{hint}" autofocus></label>
<label>Name <input type="text" name="name" placeholder="Your name"></label>
<input type="hidden" name="email_verified" value="true">
<button type="submit" name="action" value="approve" id="approve">Continue</button>
<button type="submit" name="action" value="deny" id="deny" formnovalidate>Cancel</button>
</form></body></html>"""

        @app.post("/o/oauth2/v2/auth")
        def authorize_submit():
            form = request.form
            redirect_uri, state = form.get("redirect_uri"), form.get("state")
            if not fake._client_ok(form.get("client_id")) or not redirect_uri:
                return "Error 400: invalid_request", 400
            params = {"state": state} if state else {}
            if form.get("action") == "deny":
                return redirect(_add_query(redirect_uri, {"error": "access_denied", **params}), 302)
            email = (form.get("email") or "").strip()
            if "@" not in email:
                return "Error 400: type an email address", 400
            code = "4/" + secrets.token_urlsafe(24)
            with fake.lock:
                fake.codes[code] = {
                    "client_id": form["client_id"], "redirect_uri": redirect_uri, "nonce": form.get("nonce"),
                    "challenge": form.get("code_challenge"), "method": form.get("code_challenge_method") or "plain",
                    "email": email, "name": (form.get("name") or "").strip() or email.split("@")[0].title(),
                    "email_verified": form.get("email_verified", "true") == "true", "expires": time.time() + 600}
            return redirect(_add_query(redirect_uri, {"code": code, **params, "scope": "openid email profile"}), 302)

        @app.post("/token")
        def token():
            form = request.form
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if request.authorization and request.authorization.type == "basic":
                client_id, secret = request.authorization.username, request.authorization.password
            fake.token_requests.append(dict(form))
            if not fake._client_ok(client_id, secret, check_secret=True):
                return oauth_error("invalid_client", "The OAuth client was not found.", 401)
            if form.get("grant_type") != "authorization_code":
                return oauth_error("unsupported_grant_type", "Invalid grant_type")
            with fake.lock:
                grant = fake.codes.pop(form.get("code", ""), None)
            if grant is None or grant["expires"] < time.time() or grant["client_id"] != client_id:
                return oauth_error("invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return oauth_error("redirect_uri_mismatch", "Bad Request")
            if grant["challenge"]:
                verifier = form.get("code_verifier") or ""
                expected = verifier if grant["method"] == "plain" else _b64(hashlib.sha256(verifier.encode()).digest())
                if not hmac.compare_digest(expected, grant["challenge"]):
                    return oauth_error("invalid_grant", "Invalid code verifier.")
            access = "ya29." + secrets.token_urlsafe(32)
            with fake.lock:
                fake.access_tokens[access] = grant
                overrides, how = fake.next_id_token_claims, fake.next_sign
                fake.next_id_token_claims, fake.next_sign = {}, "ok"
            claims = {"aud": client_id, "name": grant["name"], "email_verified": grant["email_verified"],
                      "nonce": grant["nonce"], **overrides}
            id_token = fake.make_id_token(grant["email"], sign=how, **claims)
            return jsonify({"access_token": access, "expires_in": 3599, "token_type": "Bearer",
                            "scope": "openid https://www.googleapis.com/auth/userinfo.email "
                                     "https://www.googleapis.com/auth/userinfo.profile",
                            "id_token": id_token})

        @app.post("/_fake/id_token")
        def mint_id_token():
            """For benchmarks against the stand-in as a process: what a phone's Google SDK would hand over."""
            body = request.get_json(force=True, silent=True) or {}
            return jsonify({"id_token": fake.make_id_token(body.get("email", "someone@example.test"),
                                                           aud=body.get("aud"), name=body.get("name"))})

        @app.get("/v1/userinfo")
        def userinfo():
            header = request.headers.get("Authorization", "")
            grant = fake.access_tokens.get(header.removeprefix("Bearer ").strip())
            if grant is None:
                return oauth_error("invalid_token", "Invalid Credentials", 401)
            return jsonify({"sub": subject_for(grant["email"]), "email": grant["email"],
                            "email_verified": grant["email_verified"], "name": grant["name"]})

        return app


def _add_query(uri: str, params: dict) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode(params)}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="local Google OpenID Connect stand-in (demo sign-in, tests)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8910)
    parser.add_argument("--client-id", default=None, help="accept only this client id (default: any)")
    parser.add_argument("--client-secret", default=None, help="accept only this client secret (default: any)")
    args = parser.parse_args(argv)
    fake = FakeGoogle(args.client_id, args.client_secret)
    fake.serve_forever(args.host, args.port, lambda f: f"Google stand-in on {f.url} (discovery: {f.discovery_url})")


if __name__ == "__main__":
    main()
