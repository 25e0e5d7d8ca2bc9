"""A local stand-in for Facebook Login and the Graph API, speaking the real protocol.

Endpoints under `/v19.0/`: `dialog/oauth` (a form where the person types an email and name, auto-approving;
"Cancel" answers `error=access_denied`), `oauth/access_token` (code → user access token; client secret,
redirect_uri and PKCE checked), `debug_token` (needs the app token `APPID|SECRET`), `me?fields=id,name,email`.
Errors come back in Graph's shape `{"error": {"message","type":"OAuthException","code"}}`.

In-process: `fake = FakeFacebook(app_id, app_secret).start()`; `fake.issue_token(email, app_id=...)` mints a
user token directly (a phone's SDK would), including one issued for another app.
As a process: `python -m tests.fakes.facebook --port N --app-id ID --app-secret SECRET`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
import threading
import time
from html import escape
from urllib.parse import urlencode, urlsplit

from flask import Flask, jsonify, redirect, request

from devtools.serve import ServedApp

VERSION = "v19.0"


def user_id_for(email: str) -> str:
    return str(10**15 + int(hashlib.sha256(email.lower().encode()).hexdigest()[:12], 16))


class FakeFacebook(ServedApp):
    def __init__(self, app_id: str = "fb-app", app_secret: str = "fb-secret"):
        self.app_id = app_id
        self.app_secret = app_secret
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.users: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.app = self._build_app()
        self._server = None
        self.url = ""

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/{VERSION}/dialog/oauth"

    @property
    def graph_url(self) -> str:
        return f"{self.url}/{VERSION}/"

    def issue_token(self, email: str | None = "someone@example.test", name: str | None = None,
                    app_id: str | None = None, valid: bool = True, user_key: str | None = None) -> str:
        """A user access token as the SDK on a phone would get it; `email=None` = the user shares no email."""
        key = (email or user_key or secrets.token_hex(4)).lower()
        uid = user_id_for(key)
        with self.lock:
            self.users[uid] = {"id": uid, "name": name or key.split("@")[0].title(), "email": email}
            token = "EAA" + secrets.token_urlsafe(32)
            self.tokens[token] = {"app_id": app_id or self.app_id, "user_id": uid, "valid": valid,
                                  "expires_at": int(time.time()) + 5184000}
        return token

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        fake = self

        def graph_error(message: str, code: int = 190, status: int = 400, type_: str = "OAuthException"):
            resp = jsonify({"error": {"message": message, "type": type_, "code": code,
                                      "fbtrace_id": secrets.token_hex(6)}})
            resp.status_code = status
            return resp

        @app.get(f"/{VERSION}/dialog/oauth")
        def dialog():
            args = request.args
            if args.get("client_id") != fake.app_id or not args.get("redirect_uri"):
                return "Invalid App ID or redirect_uri", 400
            hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in args.items())
            return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Log in to Facebook (local stand-in)</title></head>
<body><h1>Log in with Facebook</h1><p>Local stand-in: type any email and name.</p>
<form method="post" action="/{VERSION}/dialog/oauth">{hidden}
<label>Email <input type="email" name="email" required></label>
<label>Name <input type="text" name="name"></label>
<button type="submit" name="action" value="approve" id="approve">Continue</button>
<button type="submit" name="action" value="deny" id="deny" formnovalidate>Cancel</button>
</form></body></html>"""

        @app.post(f"/{VERSION}/dialog/oauth")
        def dialog_submit():
            form = request.form
            redirect_uri, state = form.get("redirect_uri"), form.get("state")
            if form.get("client_id") != fake.app_id or not redirect_uri:
                return "Invalid App ID", 400
            extra = {"state": state} if state else {}
            if form.get("action") == "deny":
                return redirect(_add_query(redirect_uri, {"error": "access_denied", "error_code": "200",
                                                          "error_reason": "user_denied", **extra}), 302)
            email = (form.get("email") or "").strip()
            code = "AQ" + secrets.token_urlsafe(32)
            with fake.lock:
                fake.codes[code] = {"redirect_uri": redirect_uri, "email": email or None,
                                    "name": (form.get("name") or "").strip() or None,
                                    "challenge": form.get("code_challenge"),
                                    "method": form.get("code_challenge_method") or "plain",
                                    "expires": time.time() + 600}
            return redirect(_add_query(redirect_uri, {"code": code, **extra}) + "#_=_", 302)

        @app.route(f"/{VERSION}/oauth/access_token", methods=["GET", "POST"])
        def access_token():
            params = request.values
            client_id, secret = params.get("client_id"), params.get("client_secret")
            if request.authorization and request.authorization.type == "basic":
                client_id, secret = request.authorization.username, request.authorization.password
            if client_id != fake.app_id or secret != fake.app_secret:
                return graph_error("Error validating client secret.", code=1)
            with fake.lock:
                grant = fake.codes.pop(params.get("code", ""), None)
            if grant is None or grant["expires"] < time.time():
                return graph_error("This authorization code has been used.", code=100)
            if params.get("redirect_uri") != grant["redirect_uri"]:
                return graph_error("Can't load URL: redirect_uri does not match", code=191)
            if grant["challenge"]:
                verifier = params.get("code_verifier") or ""
                expected = verifier if grant["method"] == "plain" else \
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not hmac.compare_digest(expected, grant["challenge"]):
                    return graph_error("Invalid code verifier", code=100)
            token = fake.issue_token(grant["email"], grant["name"],
                                     user_key=None if grant["email"] else secrets.token_hex(4))
            return jsonify({"access_token": token, "token_type": "bearer", "expires_in": 5183944})

        @app.get(f"/{VERSION}/debug_token")
        def debug_token():
            if request.args.get("access_token") != f"{fake.app_id}|{fake.app_secret}":
                return graph_error("Invalid OAuth access token - Cannot parse access token", code=190)
            info = fake.tokens.get(request.args.get("input_token", ""))
            if info is None:
                return jsonify({"data": {"is_valid": False, "error": {"code": 190, "message": "Invalid token"}}})
            return jsonify({"data": {"app_id": info["app_id"], "type": "USER", "application": "PCloud test",
                                     "expires_at": info["expires_at"], "is_valid": info["valid"],
                                     "scopes": ["email", "public_profile"], "user_id": info["user_id"]}})

        @app.get(f"/{VERSION}/me")
        def me():
            header = request.headers.get("Authorization", "")
            token = request.args.get("access_token") or header.removeprefix("Bearer ").strip()
            info = fake.tokens.get(token)
            if info is None or not info["valid"]:
                return graph_error("Invalid OAuth access token data.", code=190)
            proof = request.args.get("appsecret_proof")
            if proof is not None:
                good = hmac.new(fake.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
                if not hmac.compare_digest(proof, good):
                    return graph_error("Invalid appsecret_proof provided in the API argument", code=100)
            user = fake.users[info["user_id"]]
            fields = (request.args.get("fields") or "id,name").split(",")
            return jsonify({k: user[k] for k in fields if user.get(k) is not None} | {"id": user["id"]})

        return app


def _add_query(uri: str, params: dict) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode(params)}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="local Facebook Login / Graph API stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8911)
    parser.add_argument("--app-id", default="fb-app")
    parser.add_argument("--app-secret", default="fb-secret")
    args = parser.parse_args(argv)
    fake = FakeFacebook(args.app_id, args.app_secret)
    fake.serve_forever(args.host, args.port,
                       lambda f: f"Facebook stand-in on {f.url} (authorize: {f.authorize_url}, graph: {f.graph_url})")


if __name__ == "__main__":
    main()
