"""Mobile API blueprint (being built: see its issue)."""

from flask import Blueprint

bp = Blueprint("routes", __name__)
