"""`python -m functions.pairing.devtoken [--email E] [--name N] [--admin]`: a local user and an access token for curl.

For trying the API from a shell on a development machine (docs/pairing-quickstart.md) without a Google or
Facebook sign-in. It writes straight to the database of PCLOUD_MONGO_URL and signs with the keys in
PCLOUD_DATA_DIR, so it only works where you already hold those — it grants nothing a remote caller lacks.
"""

from __future__ import annotations

import argparse
import sys

from runtime import users
from runtime.clients import Clients
from runtime.identity import ADMIN_SCOPE, USER_SCOPES
from runtime.settings import load_settings
from runtime.tokens import issue_access_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.pairing.devtoken")
    parser.add_argument("--email", default="newcomer@example.test")
    parser.add_argument("--name", default="Newcomer")
    parser.add_argument("--admin", action="store_true",
                        help="make the account an admin and include the admin scope (to install apps, §8)")
    args = parser.parse_args(argv)
    settings = load_settings()
    clients = Clients(settings)
    try:
        email = args.email.strip().lower()
        user = users.ensure_by_email(clients.db, email, args.name)
        scopes = [*USER_SCOPES, ADMIN_SCOPE] if args.admin else list(USER_SCOPES)
        if args.admin:
            users.set_role(clients.db, user["_id"], "admin")
        token, _ = issue_access_token(clients.keys, settings, sub=user["_id"], aud="pcloud", scopes=scopes)
        print(token)
    finally:
        clients.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
