"""The notifier's settings page (/portal/settings/notifications): push rules, webhooks, their delivery log.

Its own module (the settings pages' nav links to it); a shell like the other settings pages, whose script
(static/portal/settings/notifications.js) calls /notify/v1 with the cookie and the CSRF token.
"""

from __future__ import annotations

from flask import Blueprint

from functions.portal import settings as settings_pages

bp = Blueprint("portal_notify_settings", __name__)


@bp.get("/portal/settings/notifications")
def notifications_settings_page():
    return settings_pages.settings_page("settings/notifications.html", "notifications")
