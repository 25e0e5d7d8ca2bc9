"""`python -m clients.sync_client --folder DIR [--once]`: keep a local folder and your PCloud in step.

`--camera DIR` instead backs up the pictures in DIR into /Camera (one way, with a progress bar), as the phone's
camera upload does; `--remote` names another folder.

The server and the access token come from --server / --token or PCLOUD_URL / PCLOUD_TOKEN. Without --once it
syncs every --interval seconds (polling the folder and the changes feed) until interrupted; after an offline
period or a crash it resumes from its queue in DIR/.pcloud/.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from pathlib import Path

from clients.sync_client.api import ApiFailure, SyncApi
from clients.sync_client.camera import CameraBackup
from clients.sync_client.engine import SyncClient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.sync_client", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--folder", type=Path, help="the local folder to keep in step")
    where.add_argument("--camera", type=Path, help="back up new pictures in this folder into --remote (one way)")
    parser.add_argument("--remote", default="/Camera", help="where --camera puts pictures (default /Camera)")
    parser.add_argument("--once", action="store_true", help="one sync cycle, then exit (0 = in step)")
    parser.add_argument("--server", default=os.environ.get("PCLOUD_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("PCLOUD_TOKEN"), help="access token (or PCLOUD_TOKEN)")
    parser.add_argument("--device-name", default=None, help="shown in conflicted-copy names (default: host name)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between cycles when watching")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    if not args.token:
        parser.error("an access token is needed: --token or PCLOUD_TOKEN (see docs/conflict-walkthrough.md)")
    if args.camera:
        return camera_main(args)
    client = SyncClient(args.folder, SyncApi(args.server, args.token), args.device_name or socket.gethostname())
    try:
        if args.once:
            in_step = client.sync_once()
            print("in step" if in_step else "offline: changes stay queued", file=sys.stderr)
            return 0 if in_step else 3
        while True:
            try:
                client.sync_once()
            except ApiFailure as exc:
                logging.warning("sync failed, retrying: %s", exc)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except ApiFailure as exc:
        print(f"sync failed: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()


def camera_main(args) -> int:
    if not args.camera.is_dir():
        print(f"{args.camera} is not a folder", file=sys.stderr)
        return 2
    backup = CameraBackup(args.camera, SyncApi(args.server, args.token), args.remote)
    try:
        while True:
            try:
                counts = backup.run_once()
                if args.once or counts["uploaded"] or counts["already_there"]:
                    print(f"camera: {counts['uploaded']} uploaded, {counts['already_there']} already there",
                          file=sys.stderr)
                if args.once:
                    return 0
            except ApiFailure as exc:
                if args.once:
                    print(f"camera backup failed: {exc}", file=sys.stderr)
                    return 2
                logging.warning("camera backup failed, retrying: %s", exc)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
