"""Local development only: an access token for a user of YOUR OWN server, for the walk-through.

`python -m clients.sync_client.dev_token --email you@example.test` finds or creates the user in the database of
PCLOUD_MONGO_URL and signs a first-party access token with the keys under PCLOUD_DATA_DIR (the same ones the
gateway uses), printing it. Real devices sign in with Google or Facebook (CONTRACT §2); this only exists so a
newcomer can try sync on a laptop without setting up a provider. It needs read access to the server's data dir.
"""

from __future__ import annotations

import argparse
import sys

from runtime.clients import Clients
from runtime.ids import new_id, utcnow
from runtime.settings import load_settings
from runtime.tokens import issue_access_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.sync_client.dev_token",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="Walk-through user")
    args = parser.parse_args(argv)
    settings = load_settings()
    clients = Clients(settings)
    try:
        email = args.email.strip().lower()
        user = clients.db.users.find_one({"email": email})
        if user is None:
            user = {"_id": new_id(), "email": email, "name": args.name, "identities": [], "seq": 0,
                    "journal_floor": 0, "created_at": utcnow()}
            clients.db.users.insert_one(user)
        token, _ = issue_access_token(clients.keys, settings, sub=user["_id"], aud="pcloud")
    finally:
        clients.close()
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
