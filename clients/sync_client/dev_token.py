"""Local development only: an access token for a user of YOUR OWN server, for the walk-through.

`python -m clients.sync_client.dev_token --email you@example.test` is the same tool as
`python -m functions.pairing.devtoken`: it finds or creates the user in the database of PCLOUD_MONGO_URL and
signs a first-party access token with the keys under PCLOUD_DATA_DIR. Real devices sign in with Google or
Facebook (CONTRACT §2); this only lets a newcomer try sync on a laptop without setting up a provider.
"""

from __future__ import annotations

import sys

from functions.pairing.devtoken import main

if __name__ == "__main__":
    sys.exit(main())
