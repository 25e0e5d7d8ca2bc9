"""The reference NAS bot's packages (docs/device-protocol.md "Package Setting"): what it reports and applies.

Two demo packages with typed settings, their values kept in `<state-dir>/<serial>.packages.json`. A
`package.configure` is checked again here (the device never trusts the server with its own types), applied
atomically (all settings of the change or none), and remembered by id, so a redelivered message is answered
with the same outcome and never applied twice.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

DEMO_PACKAGES = [
    {"name": "media-server", "version": "2.4.1", "title": "Media server",
     "description": "Streams your videos and music to TVs and phones on the home network",
     "settings": [
         {"key": "enabled", "type": "boolean", "label": "Enabled", "default": True},
         {"key": "port", "type": "integer", "label": "Port", "min": 1024, "max": 65535, "default": 8096},
         {"key": "transcoding", "type": "enum", "label": "Transcoding", "choices": ["off", "cpu", "gpu"],
          "default": "cpu"},
         {"key": "library_name", "type": "string", "label": "Library name", "max_length": 64, "default": "Media"},
     ]},
    {"name": "backup", "version": "1.3.0", "title": "Scheduled backup",
     "description": "Copies your files to an external disk every night",
     "settings": [
         {"key": "enabled", "type": "boolean", "label": "Enabled", "default": False},
         {"key": "hour", "type": "integer", "label": "Hour of day (UTC)", "min": 0, "max": 23, "default": 3},
         {"key": "keep_days", "type": "integer", "label": "Keep copies for (days)", "min": 1, "max": 365,
          "default": 30},
         {"key": "bandwidth_mbps", "type": "number", "label": "Bandwidth limit (Mbit/s)", "min": 0.5, "max": 1000,
          "default": 100.0},
         {"key": "target", "type": "string", "label": "Target folder", "max_length": 200, "default": "/mnt/backup"},
     ]},
]
REMEMBERED_CHANGES = 100


def problem(spec: dict, value) -> str | None:
    """Why a value does not fit a declared setting (the same rules the server applies)."""
    kind = spec["type"]
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind in ("integer", "number"):
        numeric = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not numeric or (kind == "integer" and not isinstance(value, int)):
            return f"must be {'an integer' if kind == 'integer' else 'a number'}"
        if value < spec.get("min", value) or value > spec.get("max", value):
            return "out of range"
        return None
    if kind == "string":
        return None if isinstance(value, str) and len(value) <= spec.get("max_length", 256) else "bad string"
    return None if value in spec["choices"] else "not a choice"


class PackageState:
    """The packages this device runs and their values, persisted beside the pairing state."""

    def __init__(self, path: Path, catalog: list[dict] | None = None):
        self.path = Path(path)
        self.catalog = DEMO_PACKAGES if catalog is None else catalog
        self.values: dict[str, dict] = {p["name"]: {s["key"]: s.get("default") for s in p["settings"]}
                                        for p in self.catalog}
        self.done: dict[str, dict] = {}  # change id -> the ack we sent (oldest first)
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            saved = {}
        for name, values in (saved.get("values") or {}).items():
            if name in self.values:
                self.values[name].update({k: v for k, v in values.items() if k in self.values[name]})
        self.done = saved.get("done") or {}

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"values": self.values, "done": self.done}))
        os.replace(tmp, self.path)

    def report(self) -> list[dict]:
        """The `packages` of a packages.report."""
        return [{**p, "values": dict(self.values[p["name"]])} for p in self.catalog]

    def apply(self, change_id: str, package: str, settings: dict, expired: bool) -> tuple[dict, bool]:
        """(the ack fields, whether anything changed); a change seen before gets its first answer again."""
        if change_id in self.done:
            return self.done[change_id], False
        spec = next((p for p in self.catalog if p["name"] == package), None)
        if expired:
            ack = {"ok": False, "reason": "expired"}
        elif spec is None:
            ack = {"ok": False, "reason": "unknown_package"}
        elif not isinstance(settings, dict) or not settings:
            ack = {"ok": False, "reason": "no_settings"}
        else:
            by_key = {s["key"]: s for s in spec["settings"]}
            bad = [k for k, v in settings.items() if k not in by_key or problem(by_key[k], v)]
            ack = {"ok": False, "reason": "invalid_settings"} if bad else {"ok": True}
        changed = ack["ok"]
        if changed:
            self.values[package].update(settings)
        self.done[change_id] = ack
        while len(self.done) > REMEMBERED_CHANGES:
            self.done.pop(next(iter(self.done)))
        self._save()
        return ack, changed
