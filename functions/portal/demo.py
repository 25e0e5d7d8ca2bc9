"""Demo sign-in for `make run`: decide whether to start the local Google stand-in, and with what settings.

    eval "$(python -m functions.portal.demo plan --port 8910)"    # infra/demo.sh does this

prints shell `export` lines when the demo applies (no real provider configured, the gateway on loopback),
else nothing (the reason goes to stderr). The portal's sign-in page applies the same rules again at request
time (functions.portal.signin), so a demo flag copied to a public server offers nothing.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import sys

from runtime.settings import Settings, SettingsError, load_settings
from runtime.signin import bind_is_loopback

DEMO_CLIENT_ID = "pcloud-demo"


def plan(settings: Settings, port: int, explicitly_off: bool = False) -> tuple[dict, str]:
    """(variables to export, why) — empty variables mean: no demo."""
    if explicitly_off:
        return {}, "PCLOUD_DEMO_SIGNIN is off"
    if settings.google_client_id or settings.facebook_client_id:
        return {}, "a real sign-in provider is configured"
    if not bind_is_loopback(settings.bind):
        return {}, f"the gateway listens beyond loopback ({settings.bind}); the demo sign-in is for this computer only"
    return {
        "PCLOUD_DEMO_SIGNIN": "true",
        "PCLOUD_DEMO_GOOGLE_PORT": str(port),
        "PCLOUD_GOOGLE_CLIENT_ID": DEMO_CLIENT_ID,
        # a throwaway per run, only ever shared between the gateway and the stand-in started with it
        "PCLOUD_GOOGLE_CLIENT_SECRET": secrets.token_hex(24),
        "PCLOUD_GOOGLE_DISCOVERY_URL": f"http://127.0.0.1:{port}/.well-known/openid-configuration",
    }, f"demo sign-in: local Google stand-in on 127.0.0.1:{port}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.portal.demo")
    parser.add_argument("command", choices=["plan"])
    parser.add_argument("--port", type=int, default=8910)
    parser.add_argument("--off", action="store_true", help="PCLOUD_DEMO_SIGNIN was set to false")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    exports, why = plan(settings, args.port, args.off)
    print(f"demo: {why}", file=sys.stderr)
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
