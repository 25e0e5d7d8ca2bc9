"""A sibling web app (a "reading app") that signs in through PCloud SSO with Authlib's Flask OIDC client.

It shows the signed-in user, calls PCloud's /auth/userinfo with its access token, refreshes that token, logs
out through PCloud (RP-initiated logout), and honours OIDC Back-Channel Logout: when the PCloud session ends,
PCloud POSTs a signed logout_token and every local session with that `sid` is dropped.

Register it in PCloud's PCLOUD_SSO_CLIENTS, e.g. for port 8920:
  {"client_id":"reader","client_secret":"reader-secret",
   "redirect_uris":["http://127.0.0.1:8920/callback"],
   "post_logout_redirect_uris":["http://127.0.0.1:8920/signed-out"],
   "backchannel_logout_uri":"http://127.0.0.1:8920/backchannel-logout"}
Run: python -m examples.sibling_app --pcloud http://127.0.0.1:8000 --port 8920
"""

from __future__ import annotations

import secrets
import threading

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, jsonify, redirect, request, session
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def create_app(pcloud_url: str, client_id: str, client_secret: str, base_url: str) -> Flask:
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(32)
    app.config["SESSION_COOKIE_NAME"] = f"sibling_{client_id}"
    pcloud_url = pcloud_url.rstrip("/")
    oauth = OAuth(app)
    oauth.register("pcloud", client_id=client_id, client_secret=client_secret,
                   server_metadata_url=f"{pcloud_url}/.well-known/openid-configuration",
                   client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256",
                                  "timeout": 10})
    pcloud = oauth.pcloud
    # server-side sessions: local id -> {"user", "sid", "token"}; back-channel logout removes by sid
    sessions: dict[str, dict] = {}
    lock = threading.Lock()
    app.extensions["sibling_sessions"] = sessions

    def current() -> dict | None:
        local = session.get("id")
        return sessions.get(local) if local else None

    @app.get("/")
    def home():
        state = current()
        if state is None:
            return jsonify({"signed_in": False, "login": f"{base_url}/login"})
        return jsonify({"signed_in": True, "user": state["user"], "sid": state["sid"]})

    @app.get("/login")
    def login():
        return pcloud.authorize_redirect(f"{base_url}/callback")

    @app.get("/callback")
    def callback():
        try:
            token = pcloud.authorize_access_token(claims_options={
                "iss": {"essential": True, "values": [pcloud.load_server_metadata()["issuer"]]},
                "aud": {"essential": True, "values": [client_id]}})
        except (OAuthError, JoseError) as exc:
            return jsonify({"error": str(exc)}), 400
        claims = token["userinfo"]
        local = secrets.token_urlsafe(16)
        with lock:
            sessions[local] = {"user": {"sub": claims["sub"], "email": claims.get("email"),
                                        "name": claims.get("name")},
                               "sid": claims.get("sid"), "token": dict(token)}
        session["id"] = local
        return redirect(f"{base_url}/")

    @app.get("/me")
    def me():
        """Ask PCloud who this is, with the access token (shows the token works at /auth/userinfo)."""
        state = current()
        if state is None:
            return jsonify({"error": "not signed in"}), 401
        resp = pcloud.get(pcloud.load_server_metadata()["userinfo_endpoint"], token=state["token"])
        return jsonify(resp.json()), resp.status_code

    @app.post("/refresh")
    def refresh():
        state = current()
        if state is None:
            return jsonify({"error": "not signed in"}), 401
        try:
            token = pcloud.fetch_access_token(grant_type="refresh_token",
                                              refresh_token=state["token"]["refresh_token"])
        except OAuthError as exc:
            return jsonify({"error": exc.error}), 400
        state["token"] = dict(token)
        return jsonify({"refreshed": True, "expires_in": token.get("expires_in")})

    @app.get("/logout")
    def logout():
        state = current()
        hint = state["token"].get("id_token") if state else None
        return pcloud.logout_redirect(post_logout_redirect_uri=f"{base_url}/signed-out", id_token_hint=hint)

    @app.get("/signed-out")
    def signed_out():
        try:
            pcloud.validate_logout_response()
        except OAuthError as exc:
            return jsonify({"error": exc.description}), 400
        with lock:
            sessions.pop(session.pop("id", None), None)
        return jsonify({"signed_in": False, "signed_out": True})

    def verify_logout_token(raw: str) -> dict:
        try:
            decoded = jwt.decode(raw, KeySet.import_key_set(pcloud.fetch_jwk_set()), algorithms=["RS256"])
        except InvalidKeyIdError:
            decoded = jwt.decode(raw, KeySet.import_key_set(pcloud.fetch_jwk_set(force=True)), algorithms=["RS256"])
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(leeway=60, iss={"essential": True,
                                                          "value": pcloud.load_server_metadata()["issuer"]},
                                         aud={"essential": True, "value": client_id},
                                         iat={"essential": True}, jti={"essential": True})
        registry.validate(claims)
        if BACKCHANNEL_EVENT not in (claims.get("events") or {}) or "nonce" in claims:
            raise ValueError("not a back-channel logout token")
        if not claims.get("sid") and not claims.get("sub"):
            raise ValueError("logout token names no session")
        return claims

    @app.post("/backchannel-logout")
    def backchannel_logout():
        try:
            claims = verify_logout_token(request.form.get("logout_token", ""))
        except (JoseError, ValueError) as exc:
            return jsonify({"error": "invalid_request", "error_description": str(exc)}), 400
        with lock:
            gone = [k for k, v in sessions.items()
                    if (claims.get("sid") and v["sid"] == claims["sid"])
                    or (not claims.get("sid") and v["user"]["sub"] == claims["sub"])]
            for key in gone:
                sessions.pop(key)
        resp = jsonify({"ended": len(gone)})
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return app


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="sibling web app signing in through PCloud SSO")
    parser.add_argument("--pcloud", default="http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=8920)
    parser.add_argument("--client-id", default="reader")
    parser.add_argument("--client-secret", default="reader-secret")
    args = parser.parse_args(argv)
    base = f"http://127.0.0.1:{args.port}"
    requests.get(f"{args.pcloud}/healthz", timeout=5).raise_for_status()
    create_app(args.pcloud, args.client_id, args.client_secret, base).run("127.0.0.1", args.port)
