"""The portal's settings pages: account, sessions and phones, and for admins users and apps.

Thin like routes.py: find the session, render a shell; the pages' JavaScript (static/portal/settings/) calls
the JSON APIs with the cookie and the CSRF token — /account/v1, /devices/v1, /admin/v1, /apps/v1 — so every
rule (last admin, grants, retries) stays in the service that owns it and the page shows its error as it is.
Admin pages answer 403 to members; the APIs behind them refuse members on their own anyway.

Another settings section (the notifier's /portal/settings/notifications) lives in its own module and template:
its route returns `settings_page("its/template.html", "notifications")`, its template extends
"settings/layout.html" and fills `{% block settings %}` (and `{% block page_script %}` for its script).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template

from functions.account.service import AccountService
from functions.portal import routes
from runtime import signin
from runtime.app import clients, settings
from runtime.identity import optional_identity

bp = Blueprint("portal_settings", __name__)

#: (key, href, label, admins only). Notifications is the notifier's page (functions/portal, its own module).
SECTIONS = (("account", "/portal/settings/account", "Account", False),
            ("sessions", "/portal/settings/sessions", "Sessions and phones", False),
            ("notifications", "/portal/settings/notifications", "Notifications", False),
            ("apps", "/portal/settings/apps", "Apps", False),
            ("executions", "/portal/settings/executions", "App activity", False),
            ("users", "/portal/settings/users", "Users and groups", True))


def settings_page(template: str, section: str, admin_only: bool = False, **context):
    """A signed-in settings page with the section list; 403 for members when `admin_only`."""
    session, user = routes._signed_in()
    if session is None:
        return routes._page(template, "settings")  # the sign-in redirect, with next= this page
    is_admin = bool(optional_identity() and optional_identity().is_admin)
    sections = [s for s in SECTIONS if is_admin or not s[3]]
    status = 200
    if admin_only and not is_admin:
        template, status = "settings/forbidden.html", 403
    return render_template(template, csrf=session["csrf"], user=user, nav=routes.NAV, active="settings",
                           sections=sections, section=section, is_admin=is_admin, **context), status


@bp.get("/portal/settings")
@bp.get("/portal/settings/")
def settings_home():
    return redirect("/portal/settings/account", code=302)


@bp.get("/portal/settings/account")
def account_page():
    session, user = routes._signed_in()
    if session is None:
        return routes._page("settings/account.html", "settings")
    c = clients()
    profile = AccountService(c.db, settings(), c.mongo).profile(user["id"])
    linked = {i["provider"] for i in profile["identities"]}
    # signing in with another provider that vouches for the same verified email links it (CONTRACT §2)
    linkable = [p for p in signin.providers(settings()) if p.id not in linked and not p.demo]
    return settings_page("settings/account.html", "account", profile=profile, linkable=linkable)


@bp.get("/portal/settings/sessions")
def sessions_page():
    return settings_page("settings/sessions.html", "sessions")


@bp.get("/portal/settings/apps")
def apps_page():
    return settings_page("settings/apps.html", "apps")


@bp.get("/portal/settings/executions")
def executions_page():
    return settings_page("settings/executions.html", "executions")


@bp.get("/portal/settings/users")
def users_page():
    return settings_page("settings/users.html", "users", admin_only=True)
