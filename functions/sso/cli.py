"""`python -m functions.sso.cli rotate-keys`: a new signing key; the old one stays published as the previous.

Tokens signed with the old key keep verifying until they expire (access tokens live ≤ 15 min), so a
rotation breaks nothing; rotate again only after that to drop the old key entirely.
"""

from __future__ import annotations

import argparse
import sys

from runtime.keys import KeyStore
from runtime.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.sso.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rotate-keys", help="make a new current signing key; keep the old one as previous")
    sub.add_parser("show-keys", help="print the key ids published in the JWKS")
    args = parser.parse_args(argv)
    keys = KeyStore(load_settings().data_dir)
    if args.command == "rotate-keys":
        before = [k["kid"] for k in keys.public_jwks()["keys"]]
        kid = keys.rotate()
        print(f"new signing key {kid}; previous {before[0]} stays published until the next rotation")
    else:
        for i, k in enumerate(keys.public_jwks()["keys"]):
            print(f"{'current ' if i == 0 else 'previous'} {k['kid']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
