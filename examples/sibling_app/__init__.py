"""A tiny sibling web app that signs in through PCloud SSO with Authlib's OIDC client (see app.py)."""

from examples.sibling_app.app import create_app

__all__ = ["create_app"]
