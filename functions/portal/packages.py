"""The portal's "Package Setting" page for a paired NAS; its JavaScript calls /devices/v1/devices/{id}/packages.

A blueprint of its own (registered in create_app), so it does not crowd routes.py, which other pages share.
"""

from __future__ import annotations

from flask import Blueprint

from functions.portal.routes import _page

bp = Blueprint("portal_packages", __name__)


@bp.get("/portal/devices/<device_id>/packages")
def packages_page(device_id: str):
    """The page only carries the id: whether the NAS is the user's is the API's answer (404 shown on the page)."""
    return _page("packages.html", "devices", device_id=device_id)
