"""The operator's `pcloud` command (console entry point in pyproject.toml; also `python -m pcloud_cli`).

It sits on top of the layers, beside the gateway: it calls the packages' public service modules, never their
collections, except backup/restore, which copy the whole database as it is (see backup.py).
"""
