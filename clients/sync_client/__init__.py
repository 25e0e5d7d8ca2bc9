"""The reference offline-sync client (what the Flutter app does): `python -m clients.sync_client --folder DIR`."""

from clients.sync_client.api import ApiFailure, SyncApi
from clients.sync_client.engine import SyncClient

__all__ = ["ApiFailure", "SyncApi", "SyncClient"]
