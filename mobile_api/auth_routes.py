"""Mobile API blueprint (being built: see its issue)."""

from flask import Blueprint

bp = Blueprint("auth_routes", __name__)
