"""The gateway: one WSGI entry point that owns everything cross-cutting and routes to functions."""
