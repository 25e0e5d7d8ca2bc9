"""The public side of share links (issue 19): `/s/{token}` — a download page nobody signs in to, and its JSON.

A function of its own in the gateway's table (`links`, auth `none`, no SSO cookie), built from the files package
so the link rules stay with the tree they guard (links.py). Every answer is `Cache-Control: no-store` and
`Referrer-Policy: no-referrer` (the token is in the URL); the page is plain server-rendered HTML with a CSP that
allows no script at all.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from flask import Flask, Response, jsonify, redirect, render_template_string, request

from functions.files import links, reading, tree
from functions.files.sharing_schemas import (
    PublicChildrenQuery,
    PublicLink,
    PublicNodeQuery,
    PublicPage,
    Unlock,
    Unlocked,
)
from runtime.app import clients, function_app, json_body
from runtime.errors import ApiError, BadRequest, NotFound
from runtime.ids import iso
from runtime.schemas import Api, query, validate
from runtime.settings import Settings

api = Api("links", import_name=__name__)
COOKIE = "pcloud_link_access"
ACCESS_HEADER = {"name": "X-PCloud-Link-Access", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the grant from /unlock, for a password link"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
_GONE = "link_revoked or link_expired"
_404 = "no such link, or no such node inside it (also: anything outside the link)"


def openapi_apis() -> list:
    return [api]


def create_app(settings: Settings | None = None) -> Flask:
    app = function_app(__name__, settings, name="links")
    app.register_blueprint(api.blueprint)
    app.after_request(_headers)
    return app


def _headers(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


def _grant() -> str | None:
    return request.headers.get("X-PCloud-Link-Access") or request.args.get("access") or request.cookies.get(COOKIE)


def _access() -> links.Access:
    c = clients()
    return links.Access(c.redis, c.redis_keys)


def _open(token: str) -> dict:
    link = links.open_link(clients().db, token)
    _access().require(link, _grant())
    return link


@api.get("/s/<token>/info", operation_id="getPublicLink", summary="What a share link shares (no sign-in)",
         query=PublicNodeQuery, parameters=[ACCESS_HEADER],
         responses={200: PublicLink, 401: "password_required", 404: _404, 410: _GONE})
def info(token: str):
    link = _open(token)
    q = query(PublicNodeQuery)
    return jsonify({"node": links.public_node(links.reachable(clients().db, link, q.node, q.path), link),
                    "expires_at": iso(link.get("expires_at")),
                    "password_required": bool(link.get("password_hash"))})


@api.get("/s/<token>/children", operation_id="listPublicChildren",
         summary="A folder inside a folder link, paged by name (node= or path=; default the link's folder)",
         query=PublicChildrenQuery, parameters=[ACCESS_HEADER],
         responses={200: PublicPage, 401: "password_required", 404: _404, 410: _GONE})
def children(token: str):
    link = _open(token)
    q = query(PublicChildrenQuery)
    db = clients().db
    folder = links.reachable(db, link, q.node, q.path)
    docs, after = links.children(db, link, folder, tree.decode_cursor(q.cursor), q.limit or 100)
    return jsonify({"items": [links.public_node(d, link) for d in docs],
                    "next_cursor": tree.encode_cursor(after) if after else None})


@api.get("/s/<token>/content", operation_id="downloadPublic",
         summary="Download the link's file, or a file inside a folder link (counts a download)",
         query=PublicNodeQuery, parameters=[ACCESS_HEADER],
         responses={200: {"description": "the bytes, as an attachment", "content": {
             "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
             401: "password_required", 404: _404, 409: "not_a_file", 410: _GONE})
def content(token: str):
    link = _open(token)
    q = query(PublicNodeQuery)
    c = clients()
    node = links.reachable(c.db, link, q.node, q.path)
    if node.get("kind") != "file":
        raise NotFound("no such file in this link", code="not_a_file")
    links.count_download(c.db, link)
    size = int(node.get("size") or 0)
    stream = reading.iter_content(c.store, node, 0, size - 1) if size else iter(())
    name = node.get("name") or "download"
    return Response(stream, status=200, direct_passthrough=True, headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(size),
        "ETag": f'"{node["content_hash"]}"', "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@api.post("/s/<token>/unlock", operation_id="unlockPublicLink",
          summary="Trade a link's password for an hour's access (JSON; a form post sets a cookie and 303s to the page)",
          body=Unlock, validate=False,
          responses={200: Unlocked, 303: "a form post: back to the page with the access cookie",
                     403: "wrong_password", 404: _404, 410: _GONE, 429: "too_many_attempts (Retry-After)"})
def unlock(token: str):
    is_form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
    link = links.open_link(clients().db, token)
    password = request.form.get("password") if is_form else validate(Unlock, json_body()).password
    try:
        grant = _access().unlock(link, password, request.remote_addr or "?", time.time())
    except ApiError as err:
        if not is_form:
            raise
        return _page(token, link, error=err)
    if not is_form:
        return jsonify({"access": grant, "expires_in": links.ACCESS_SECONDS})
    response = redirect(f"/s/{quote(token)}", code=303)
    response.set_cookie(COOKIE, grant, max_age=links.ACCESS_SECONDS, path=f"/s/{token}", httponly=True,
                        samesite="Lax", secure=clients().settings.is_https)
    return response


@api.get("/s/<token>", operation_id="getPublicPage",
         summary="The public download page of a share link (HTML, no sign-in; ?node= browses a folder link)",
         responses={200: {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}},
                    401: "the page with the password form", 404: _404, 410: _GONE})
def page(token: str):
    try:
        link = links.open_link(clients().db, token)
    except ApiError as err:
        return _page(token, None, error=err)
    return _page(token, link)


def _page(token: str, link: dict | None, error: ApiError | None = None):
    """The page: an error, the password form, a file's download button or a folder's listing."""
    db = clients().db
    context = {"token": token, "error": error, "locked": False, "node": None, "items": [], "up": None,
               "more": None}
    status = error.status if error is not None else 200
    if link is not None and not _access().allowed(link, _grant()):
        context["locked"] = True
        status = status if error is not None else 401
    elif link is not None:
        try:
            node = links.reachable(db, link, request.args.get("node"))
        except ApiError as err:
            context["error"], status = err, err.status
        else:
            context["node"] = links.public_node(node, link)
            if node["kind"] == "folder":
                try:
                    after = tree.decode_cursor(request.args.get("cursor"))
                except BadRequest:
                    after = None
                docs, more = links.children(db, link, node, after, 200)
                context["items"] = [links.public_node(d, link) for d in docs]
                context["more"] = tree.encode_cursor(more) if more else None
                if node["_id"] != link["node_id"]:
                    context["up"] = node.get("parent_id")
    html = render_template_string(_TEMPLATE, **context, size=_size)
    return Response(html, status=status, mimetype="text/html")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ node.name if node and node.name else "Shared with you" }} · PCloud</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
a.button,button{background:#2563eb;color:#fff;border:0;border-radius:.4rem;padding:.5rem 1rem;text-decoration:none}
li{padding:.3rem 0}.error{color:#b91c1c}.muted{color:#666}</style></head>
<body><h1>PCloud</h1>
{% if error %}<p class="error" id="error" data-code="{{ error.code }}">{{ error.message }}</p>{% endif %}
{% if locked %}
<form method="post" action="/s/{{ token }}/unlock" id="unlock"><p>This link is protected by a password.</p>
<label>Password <input type="password" name="password" id="password" autofocus required></label>
<button type="submit">Open</button></form>
{% elif node and node.kind == "file" %}
<h2 id="name">{{ node.name }}</h2><p class="muted">{{ size(node.size) }}</p>
<p><a class="button" id="download" href="/s/{{ token }}/content">Download</a></p>
{% elif node %}
<h2 id="name">{{ node.name or "Shared folder" }}</h2>
{% if up %}<p><a id="up" href="/s/{{ token }}?node={{ up }}">⬑ up</a></p>{% endif %}
<ul id="items">{% for item in items %}
<li>{% if item.kind == "folder" %}📁 <a class="folder" href="/s/{{ token }}?node={{ item.id }}">{{ item.name }}</a>
{% else %}📄 <a class="file" href="/s/{{ token }}/content?node={{ item.id }}">{{ item.name }}</a>
<span class="muted">{{ size(item.size) }}</span>{% endif %}</li>
{% else %}<li class="muted">This folder is empty.</li>{% endfor %}</ul>
{% if more %}<p><a href="/s/{{ token }}?node={{ node.id }}&cursor={{ more }}">more…</a></p>{% endif %}
{% endif %}
</body></html>
"""
