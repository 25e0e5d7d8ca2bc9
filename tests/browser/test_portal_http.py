"""The portal over HTTP (no browser): who sees which page, the CSRF meta, headers, demo sign-in rules."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from runtime import signin
from runtime.ids import new_id, utcnow
from runtime.settings import load_settings

PAGES = ["/portal/files", "/portal/trash", "/portal/devices", "/portal/conflicts", "/portal/notifications"]


def get_as(client, session, path: str, **kwargs):
    """GET with this session's cookie (or none); the test client's cookie jar decides the Cookie header."""
    if session is None:
        client.delete_cookie("pcloud_sso")
    else:
        client.set_cookie("pcloud_sso", session if isinstance(session, str) else session.cookie)
    return client.get(path, **kwargs)


def test_anonymous_visitor_is_sent_to_sign_in_with_the_page_to_return_to(client):
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 302
        assert r.headers["Location"] == f"/portal/signin?next={path}"
    r = client.get("/portal/files?folder=abc")
    assert r.headers["Location"] == "/portal/signin?next=/portal/files?folder=abc"


def test_root_and_portal_home_lead_to_sign_in_or_files(client, make_portal_session):
    assert client.get("/").headers["Location"] == "/portal/"
    assert client.get("/portal/").headers["Location"] == "/portal/signin"
    session = make_portal_session()
    assert get_as(client, session, "/portal/").headers["Location"] == "/portal/files"
    assert get_as(client, session, "/portal/signin").headers["Location"] == "/portal/files"


def test_signed_in_page_carries_the_sessions_csrf_and_the_users_name(client, make_portal_session):
    session = make_portal_session(name="Ada <Lovelace>")
    for path in PAGES:
        r = get_as(client, session, path)
        assert r.status_code == 200, path
        html = r.get_data(as_text=True)
        assert f'<meta name="csrf-token" content="{session.csrf}">' in html
        assert "Ada &lt;Lovelace&gt;" in html and "Ada <Lovelace>" not in html
        assert 'action="/auth/logout"' in html


def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(client, make_portal_session):
    session = make_portal_session()
    for path in ["/portal/signin", *PAGES]:
        check_page_security(get_as(client, session if path != "/portal/signin" else None, path))


def check_page_security(r):
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> found"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler found"


def test_ended_or_expired_session_sees_no_page(client, clients, make_portal_session):
    ended = make_portal_session()
    clients.db.sso_sessions.update_one({"_id": ended.sid}, {"$set": {"ended_at": utcnow()}})
    assert get_as(client, ended, "/portal/files").status_code == 302
    expired = make_portal_session()
    clients.db.sso_sessions.update_one({"_id": expired.sid},
                                       {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    assert get_as(client, expired, "/portal/files").status_code == 302
    assert get_as(client, "not-a-session", "/portal/files").status_code == 302


def test_a_bearer_token_alone_gets_no_page(client, make_user):
    """Pages hand out the CSRF token of a cookie session; a bearer caller has none and is sent to sign in."""
    user = make_user()
    r = client.get("/portal/files", headers=user.headers)
    assert r.status_code == 302 and r.headers["Location"].startswith("/portal/signin")


def test_static_assets_are_served_with_the_right_types(client):
    for path, mimetype in [("/static/portal/portal.css", "text/css"), ("/static/portal/files.js", "text/javascript"),
                           ("/static/portal/hash-worker.js", "text/javascript")]:
        r = client.get(path)
        assert r.status_code == 200 and r.mimetype == mimetype, path
    assert client.get("/static/portal/../__init__.py").status_code == 404


def test_sign_in_next_only_returns_to_portal_pages(env, clients):
    from werkzeug.test import Client

    from gateway.wsgi import create_gateway
    from runtime.clients import forget

    settings = load_settings({**env, **DEMO})
    try:
        client = Client(create_gateway(settings))
        for bad in ["https://evil.example/", "//evil.example/x", "/auth/logout", "/portal\\..\\x", "javascript:x"]:
            html = client.get("/portal/signin", query_string={"next": bad}).get_data(as_text=True)
            assert "evil" not in html and "javascript" not in html and "logout?" not in html, bad
            assert 'href="/auth/login/google?next=/portal/files"' in html, bad
    finally:
        forget(settings)


def test_notifications_page_shows_push_deliveries_with_device_names(client, clients, make_portal_session):
    session = make_portal_session()
    other = make_portal_session()
    phone = new_id()
    clients.db.devices.insert_one({"_id": phone, "kind": "phone", "owner": session.user_id, "name": "Ada's Pixel",
                                   "platform": "android", "created_at": utcnow()})
    clients.db.push_deliveries.insert_many([
        {"_id": new_id(), "owner": session.user_id, "device_id": phone, "kind": "conflict", "status": "sent",
         "attempts": 1, "data": {"type": "conflict"}, "notification": ["Conflict on report.txt", "Both kept"],
         "created_at": utcnow(), "updated_at": utcnow()},
        {"_id": new_id(), "owner": other.user_id, "device_id": new_id(), "kind": "pairing", "status": "failed",
         "reason": "unregistered", "attempts": 1, "data": {}, "created_at": utcnow(), "updated_at": utcnow()},
    ])
    html = get_as(client, session, "/portal/notifications").get_data(as_text=True)
    assert "Conflict on report.txt" in html and "Ada&#39;s Pixel" in html and "status-sent" in html
    assert "unregistered" not in html  # another user's delivery
    html = get_as(client, other, "/portal/notifications").get_data(as_text=True)
    assert "unregistered" in html and "report.txt" not in html


def test_conflicts_page_explains_each_conflict_of_this_user_only(client, clients, make_portal_session):
    session = make_portal_session()
    other = make_portal_session()
    node = new_id()
    folder = new_id()
    clients.db.nodes.insert_one({"_id": node, "owner": session.user_id, "name": "budget.xlsx", "kind": "file",
                                 "parent_id": folder, "trashed_at": None})
    clients.db.conflicts.insert_many([
        {"_id": new_id(), "owner": session.user_id, "type": "edit_edit", "resolution": "conflicted_copy",
         "node_id": node, "created_at": utcnow()},
        {"_id": new_id(), "owner": other.user_id, "type": "cycle", "resolution": "kept_server",
         "node_id": new_id(), "created_at": utcnow()},
    ])
    html = get_as(client, session, "/portal/conflicts").get_data(as_text=True)
    assert "budget.xlsx" in html and "edit_edit" in html and "conflicted copy" in html
    assert f'href="/portal/files?folder={folder}"' in html
    assert "cycle" not in html
    html = get_as(client, other, "/portal/conflicts").get_data(as_text=True)
    assert 'data-type="cycle"' in html and "budget.xlsx" not in html


# --- demo sign-in rules ----------------------------------------------------------------------------------
DEMO = {"PCLOUD_DEMO_SIGNIN": "true", "PCLOUD_GOOGLE_CLIENT_ID": "pcloud-demo",
        "PCLOUD_GOOGLE_CLIENT_SECRET": "demo-secret",
        "PCLOUD_GOOGLE_DISCOVERY_URL": "http://127.0.0.1:8099/.well-known/openid-configuration"}


def providers_for(**env) -> list:
    return signin.providers(load_settings({k: v for k, v in env.items() if v is not None}))


def test_demo_sign_in_is_offered_on_loopback_without_a_real_provider():
    for bind in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.2:9000"):
        found = providers_for(**DEMO, PCLOUD_BIND=bind)
        assert [(p.id, p.demo) for p in found] == [("google", True)], bind
        assert "Demo" in found[0].label and "stand-in" in found[0].label


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "[::]:8000", "192.168.1.20:8000", "cloud.example.org:443"])
def test_demo_sign_in_is_never_offered_beyond_loopback(bind):
    assert providers_for(**DEMO, PCLOUD_BIND=bind) == []
    assert not signin.demo_signin_active(load_settings({**DEMO, "PCLOUD_BIND": bind}))


def test_demo_sign_in_is_never_offered_with_a_real_provider():
    real_google = {**DEMO, "PCLOUD_GOOGLE_DISCOVERY_URL": "https://accounts.google.com/.well-known/openid-configuration"}
    assert providers_for(**real_google) == []  # the demo flag with a real Google: refuse to guess, offer nothing
    with_facebook = {**DEMO, "PCLOUD_FACEBOOK_CLIENT_ID": "123", "PCLOUD_FACEBOOK_CLIENT_SECRET": "s"}
    assert [(p.id, p.demo) for p in providers_for(**with_facebook)] == [("facebook", False)]
    plain = {"PCLOUD_GOOGLE_CLIENT_ID": "real.apps.googleusercontent.com", "PCLOUD_GOOGLE_CLIENT_SECRET": "s",
             "PCLOUD_FACEBOOK_CLIENT_ID": "123", "PCLOUD_FACEBOOK_CLIENT_SECRET": "s"}
    assert [(p.id, p.demo) for p in providers_for(**plain)] == [("google", False), ("facebook", False)]
    assert providers_for() == []


def test_sign_in_page_labels_the_demo_and_links_to_the_sso(env, clients, live_server_factory):
    from gateway.wsgi import create_gateway
    from runtime.clients import forget

    settings = load_settings({**env, **DEMO})
    gateway = create_gateway(settings)
    try:
        from werkzeug.test import Client

        html = Client(gateway).get("/portal/signin?next=/portal/devices").get_data(as_text=True)
    finally:
        forget(settings)
    assert 'href="/auth/login/google?next=/portal/devices"' in html
    assert "Demo only." in html and "This is not Google" in html


def test_only_cookie_identities_have_a_live_session(clients, make_portal_session):
    from functions.portal import service
    from runtime.identity import Identity

    session = make_portal_session()
    assert service.live_session(clients.db, Identity(session.user_id, via="cookie", session_id=session.sid))["csrf"] \
        == session.csrf
    assert service.live_session(clients.db, Identity(session.user_id, via="bearer", session_id=session.sid)) is None
    assert service.live_session(clients.db, Identity("someone-else", via="cookie", session_id=session.sid)) is None
    assert service.live_session(clients.db, Identity("u1", via="bearer", session_id="x")) is None
    assert service.live_session(clients.db, None) is None


def test_csp_lets_the_browser_reach_only_the_object_store_besides_itself():
    from functions.portal import security

    local = load_settings({})
    assert "connect-src 'self';" in security.content_security_policy(local)
    minio = load_settings({"PCLOUD_STORE_URL": "s3://pcloud?endpoint=http://127.0.0.1:9000&region=us-east-1"})
    assert "connect-src 'self' http://127.0.0.1:9000;" in security.content_security_policy(minio)
    aws = load_settings({"PCLOUD_STORE_URL": "s3://pcloud-blobs"})
    assert "connect-src 'self' https://*.amazonaws.com;" in security.content_security_policy(aws)
