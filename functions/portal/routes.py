"""The portal's pages. Thin: find the session, render a template; the pages' JavaScript calls the JSON APIs."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, redirect, render_template, request

from functions.portal import service
from runtime import signin
from runtime.app import clients, settings
from runtime.errors import BadRequest
from runtime.identity import optional_identity

bp = Blueprint("portal", __name__)

NAV = (("files", "/portal/files", "Files"), ("devices", "/portal/devices", "Devices"),
       ("trash", "/portal/trash", "Trash"), ("conflicts", "/portal/conflicts", "Conflicts"),
       ("notifications", "/portal/notifications", "Notifications"),
       ("settings", "/portal/settings", "Settings"))


def _signed_in():
    """(session, user) for a live cookie session, else (None, None)."""
    db = clients().db
    session = service.live_session(db, optional_identity())
    if session is None:
        return None, None
    return session, service.user_view(db, session["user_id"])


def _page(template: str, active: str, extra=None, **context):
    """Render a signed-in page; `extra(user)` adds what only a signed-in user may see."""
    session, user = _signed_in()
    if session is None:
        target = request.full_path.rstrip("?")
        return redirect(f"/portal/signin?next={quote(target, safe='/?=&')}", code=302)
    if extra is not None:
        context.update(extra(user))
    return render_template(template, csrf=session["csrf"], user=user, nav=NAV, active=active, **context)


def when(value: str | None) -> str:
    """An ISO timestamp as people read it (UTC, to the minute); the exact value stays in datetime=."""
    if not value:
        return ""
    return value[:16].replace("T", " ") + " UTC"


def _safe_next(value: str | None) -> str:
    """Only our own pages: an absolute URL or `//host` would make the sign-in an open redirect."""
    if value and value.startswith("/portal/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/portal/files"


@bp.get("/portal")
@bp.get("/portal/")
def home():
    session, _ = _signed_in()
    return redirect("/portal/files" if session else "/portal/signin", code=302)


@bp.get("/portal/signin")
def signin_page():
    s = settings()
    next_url = _safe_next(request.args.get("next"))
    session, user = _signed_in()
    if session is not None:
        return redirect(next_url, code=302)
    return render_template("signin.html", providers=signin.providers(s), next_url=next_url, user=None, nav=(),
                           demo=signin.demo_signin_active(s), error=request.args.get("error"),
                           signed_out=request.args.get("signed_out") == "1")


@bp.get("/portal/files")
def files_page():
    return _page("files.html", "files", folder_id=request.args.get("folder", ""))


@bp.get("/portal/trash")
def trash_page():
    return _page("trash.html", "trash", trash_days=settings().trash_days)


@bp.get("/portal/devices")
def devices_page():
    return _page("devices.html", "devices")


@bp.get("/portal/conflicts")
def conflicts_page():
    return _page("conflicts.html", "conflicts",
                 extra=lambda user: {"conflicts": service.recent_conflicts(clients().db, user["id"])})


@bp.get("/portal/notifications")
def notifications_page():
    cursor = request.args.get("cursor") or None

    def deliveries(user):
        try:
            page = service.recent_notifications(clients().db, user["id"], cursor)
        except BadRequest:  # a cursor we never handed out: show the first page
            page = service.recent_notifications(clients().db, user["id"], None)
        return {"deliveries": page["items"], "next_cursor": page["next_cursor"]}

    return _page("notifications.html", "notifications", extra=deliveries)
